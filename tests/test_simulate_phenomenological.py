from pathlib import Path

import numpy as np
import pytest

from napari_step.simulate.andi2_world import ANDI2_MODELS, andi2_like, andi2_parameters
from napari_step.simulate.phenom_spatial import (
    confinement,
    dimerisation,
    immobile_traps,
    place_compartments,
)
from napari_step.simulate.phenomenological import (
    CONFINED,
    DIRECTED,
    FREE,
    IMMOBILE,
    label_changepoints,
    multi_state,
    single_state,
)


def check_labels(res, n, t, dim=2):
    """Shapes, forward convention (last frame repeats) and change points = label changes."""
    assert res.positions.shape == (n, t, dim) == res.true_positions.shape
    for lab in (res.d, res.alpha, res.state):
        assert lab.shape == (n, t)
        np.testing.assert_array_equal(lab[:, -1], lab[:, -2])
    for i, cps in enumerate(res.changepoints):
        bounds = np.concatenate([[0], cps, [t]])
        for a, b in zip(bounds[:-1], bounds[1:]):  # labels constant inside segments
            for lab in (res.d, res.alpha, res.state):
                assert np.all(lab[i, a:b] == lab[i, a])
        for c in cps:
            assert (res.d[i, c], res.alpha[i, c], res.state[i, c]) != (
                res.d[i, c - 1],
                res.alpha[i, c - 1],
                res.state[i, c - 1],
            )


def test_two_state_switching_dwell_times_are_geometric_and_steps_follow_d():
    p = 0.3  # switching down to dwell times of a few frames
    res = multi_state(3000, 200, d=(1.0, 0.01), transition=p, rng=np.random.default_rng(0))
    check_labels(res, 3000, 200)
    assert set(np.unique(res.state)) == {FREE}
    # forward convention: the step t -> t+1 has variance 2 d[t] per axis
    steps = np.diff(res.true_positions, axis=1)
    for dv in (1.0, 0.01):
        sel = res.d[:, :-1] == dv
        assert (steps[sel] ** 2).mean() / 2 == pytest.approx(dv, rel=0.02)
    # dwell times (complete ones) are geometric with the switching probability
    dwell = np.concatenate([np.diff(c) for c in res.changepoints])
    k = np.arange(1, 8)
    freq = np.array([(dwell == j).mean() for j in k])
    np.testing.assert_allclose(freq, p * (1 - p) ** (k - 1), atol=0.01)
    assert dwell.mean() == pytest.approx(1 / p, rel=0.03)


def test_three_state_transition_matrix_and_per_track_parameters():
    m = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]])  # a cycle 0 -> 1 -> 2
    d = np.array([[2.0, 0.2, 0.02]]).repeat(500, 0) * np.linspace(1, 10, 500)[:, None]
    res = multi_state(500, 300, d=d, transition=m, rng=np.random.default_rng(1))
    check_labels(res, 500, 300)
    s = res.info["markov_state"]
    moves = s[:, 1:][s[:, 1:] != s[:, :-1]] - s[:, :-1][s[:, 1:] != s[:, :-1]]
    assert set(np.unique(moves % 3)) == {1}  # only the cycle's transitions
    occupancy = np.bincount(s.ravel(), minlength=3) / s.size
    np.testing.assert_allclose(occupancy, 1 / 3, atol=0.03)
    np.testing.assert_allclose(res.d, d[np.arange(500)[:, None], s])


def test_immobile_state_moves_only_by_the_noise():
    sigma = 0.12
    res = multi_state(
        1000, 200, d=(1.0, 0.0), transition=0.05, sigma=sigma, rng=np.random.default_rng(2)
    )
    check_labels(res, 1000, 200)
    imm = res.state[:, :-1] == IMMOBILE
    assert 0.3 < imm.mean() < 0.7
    assert (res.d[:, :-1][imm] == 0).all() and (res.alpha[:, :-1][imm] == 0).all()
    true_steps = np.diff(res.true_positions, axis=1)
    assert (true_steps[imm] == 0).all()
    steps = np.diff(res.positions, axis=1)[imm]  # two independent noise draws per step
    assert steps.var() == pytest.approx(2 * sigma**2, rel=0.03)


def test_immobile_traps_stop_particles_where_they_bind():
    sigma = 0.12
    res = immobile_traps(
        600,
        200,
        d=1.0,
        n_traps=600,
        trap_radius=0.8,
        p_unbind=0.05,
        sigma=sigma,
        rng=np.random.default_rng(3),
    )
    check_labels(res, 600, 200)
    trapped = res.state[:, :-1] == IMMOBILE
    assert 0.05 < trapped.mean() < 0.9 and set(np.unique(res.state)) == {IMMOBILE, FREE}
    assert (np.diff(res.true_positions, axis=1)[trapped] == 0).all()
    assert np.diff(res.positions, axis=1)[trapped].var() == pytest.approx(2 * sigma**2, rel=0.05)
    free = ~trapped
    assert (np.diff(res.true_positions, axis=1)[free] ** 2).mean() / 2 == pytest.approx(1, rel=0.05)
    # particles bind only near a trap of their own field
    traps = res.info["traps"]
    first = [(i, c[0]) for i, c in enumerate(res.changepoints) if c.size and trapped[i, c[0]]]
    for i, c in first[:50]:
        gap = np.linalg.norm(traps[res.info["field"][i]] - res.true_positions[i, c], axis=1)
        assert gap.min() < 0.8
    # unbinding is geometric with p_unbind: mean trapped dwell about 1 / 0.05
    dwell = [np.diff(c)[trapped[i, c[:-1]]] for i, c in enumerate(res.changepoints) if c.size > 1]
    assert np.concatenate(dwell).mean() == pytest.approx(20, rel=0.2)


def test_confined_msd_plateaus_at_the_compartment_size():
    r = 4.0
    res = confinement(
        400,
        400,
        d=(1.0, 0.1),
        n_compartments=20,
        radius=r,
        transmittance=0.0,
        start_inside=True,
        rng=np.random.default_rng(4),
    )
    check_labels(res, 400, 400)
    assert (res.state == CONFINED).all() and (res.d == 0.1).all()
    x = res.true_positions
    msd = ((x - x[:, :1]) ** 2).sum(-1).mean(0)
    assert msd[1] == pytest.approx(4 * 0.1, rel=0.1)  # free at short lags
    assert msd[200:].mean() == pytest.approx(r**2, rel=0.1)  # 2 <|x|^2> of a uniform disc
    centres = np.stack([res.info["centres"][f] for f in res.info["field"]])  # (N, m, 2)
    dist = np.linalg.norm(x[:, :, None] - centres[:, None], axis=-1).min(-1)
    assert dist.max() <= r + 1e-6  # reflecting walls: nobody leaves


def test_confinement_with_permeable_walls_switches_states():
    res = confinement(
        500,
        200,
        d=(1.0, 0.05),
        radius=5.0,
        n_compartments=30,
        box=100.0,
        transmittance=0.2,
        start_inside=True,
        rng=np.random.default_rng(5),
    )
    check_labels(res, 500, 200)
    assert {CONFINED, FREE} <= set(np.unique(res.state))
    np.testing.assert_array_equal(res.d == 0.05, res.state == CONFINED)
    assert any(c.size for c in res.changepoints)
    centres = place_compartments(30, 5.0, 100.0, 2, np.random.default_rng(0))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(30, 1)]
    assert gaps.min() > 10.0 and centres.min() >= 5 and centres.max() <= 95


def test_directed_motion_msd_is_quadratic():
    d, v = 0.5, 0.7
    res = single_state(2000, 100, d=d, speed=v, rng=np.random.default_rng(6))
    check_labels(res, 2000, 100)
    assert (res.state == DIRECTED).all() and not any(c.size for c in res.changepoints)
    x = res.true_positions
    t = np.arange(1, 100)
    msd = ((x[:, 1:] - x[:, :1]) ** 2).sum(-1).mean(0)
    coef = np.polyfit(t, msd, 2)
    assert coef[0] == pytest.approx(v**2, rel=0.03) and coef[1] == pytest.approx(4 * d, rel=0.2)


@pytest.mark.parametrize("alpha", [0.5, 1.5])
def test_alpha_per_state_is_fbm(alpha):
    res = multi_state(
        1500,
        200,
        d=(1.0, 1.0),
        alpha=(alpha, 1.0),
        transition=0.0,
        initial=[1.0, 0.0],
        rng=np.random.default_rng(7),
    )
    assert (res.alpha == alpha).all()
    x = res.true_positions
    t = np.arange(10, 100)
    msd = (x[:, t] ** 2).sum(-1).mean(0)
    assert np.polyfit(np.log(t), np.log(msd), 1)[0] == pytest.approx(alpha, abs=0.05)
    inc = np.diff(x, axis=1)
    rho = (inc[:, 1:] * inc[:, :-1]).mean() / inc.var()
    assert rho == pytest.approx(2 ** (alpha - 1) - 1, abs=0.02)


def test_dimers_move_together_with_the_dimer_d():
    res = dimerisation(
        400,
        200,
        d=(1.0, 0.1),
        radius=1.5,
        per_field=100,
        box=40.0,
        p_unbind=0.05,
        rng=np.random.default_rng(8),
    )
    check_labels(res, 400, 200)
    partner = res.info["partner"]
    bound = partner >= 0
    assert 0.1 < bound.mean() < 0.9
    i, t = np.nonzero(bound[:, :-1] & bound[:, 1:] & (partner[:, :-1] == partner[:, 1:]))
    j = partner[i, t]
    step_i = res.true_positions[i, t + 1] - res.true_positions[i, t]
    step_j = res.true_positions[j, t + 1] - res.true_positions[j, t]
    near = [np.abs(res.true_positions[k, s] - 20) > 17 for k in (i, j) for s in (t, t + 1)]
    walls = np.any(near, axis=(0, 2))  # a reflecting wall may split the pair's steps
    np.testing.assert_allclose(step_i[~walls], step_j[~walls], atol=1e-9)
    d = res.d[:, :-1]  # the last frame repeats the one before it
    assert (d[bound[:, :-1]] == 0.1).all() and (d[~bound[:, :-1]] == 1.0).all()
    assert np.array_equal(partner[partner[i, t], t], i)  # pairs are mutual


def test_blur_and_noise_of_a_phenomenological_track_follow_berglund():
    f, sigma = 1.0, 0.3
    res = single_state(3000, 60, d=1.0, exposure=f, sigma=sigma, rng=np.random.default_rng(9))
    dx = np.diff(res.positions, axis=1)
    r = f / 6
    assert (dx**2).mean() == pytest.approx(2 * (1 - 2 * r) + 2 * sigma**2, rel=0.03)
    cov = (dx[:, 1:] * dx[:, :-1]).mean()
    assert cov == pytest.approx(2 * r - sigma**2, abs=0.02)


def test_label_changepoints_and_bad_inputs():
    lab = np.array([[1, 1, 2, 2, 2], [3, 3, 3, 3, 3]])
    cps = label_changepoints(lab, np.zeros_like(lab))
    assert [c.tolist() for c in cps] == [[2], []]
    with pytest.raises(ValueError, match="alpha"):
        multi_state(2, 50, d=(1.0, 0.1), alpha=(1.0, 2.5))
    with pytest.raises(ValueError, match="row-stochastic"):
        multi_state(2, 50, d=(1.0, 0.1), transition=[[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="d must be"):
        multi_state(3, 50, d=np.ones((4, 2)))
    with pytest.raises(ValueError, match="dim 2 or 3"):
        confinement(2, 50, dim=1)
    with pytest.raises(ValueError, match="do not fit"):
        place_compartments(3, 6.0, 10.0, 2, np.random.default_rng(0))


@pytest.mark.parametrize("model", ANDI2_MODELS)
def test_andi2_like_draws_the_challenge_world(model):
    res = andi2_like(model, 100, 120, rng=np.random.default_rng(10))
    check_labels(res, 100, 120)
    noise = res.positions - res.true_positions
    assert noise.std() == pytest.approx(0.12, rel=0.05)
    moving = res.d > 0
    assert ((res.alpha[moving] > 0) & (res.alpha[moving] < 2)).all()
    d, alpha = andi2_parameters(model, 100, rng=np.random.default_rng(11))
    assert d.shape[1] == alpha.shape[1] == (1 if model in ("single_state", "immobile_traps") else 2)
    if d.shape[1] == 2:  # the second state is slower, with a smaller alpha, in each field
        for f in (slice(0, 50), slice(50, 100)):
            assert np.median(d[f, 1]) < 0.15 < 0.8 < np.median(d[f, 0])
            assert np.median(alpha[f, 0] - alpha[f, 1]) > 0.15
    with pytest.raises(ValueError, match="unknown AnDi-2 model"):
        andi2_like("brownian", 10)


@pytest.mark.parametrize("model", [immobile_traps, confinement, dimerisation])
def test_spatial_models_move_by_fbm_from_the_first_frame(model):
    alpha = 0.5
    kw = {"transmittance": 1.0, "radius": 0.5} if model is confinement else {"p_bind": 0.0}
    res = model(1000, 120, d=1.0, alpha=alpha, rng=np.random.default_rng(12), **kw)
    free = (res.state == FREE).all(1)
    assert free.mean() > 0.9
    inc = np.diff(res.true_positions[free][:, :60], axis=1)
    walls = (np.abs(res.true_positions[free][:, :60] - 115.2) > 110).any((1, 2))
    inc = inc[~walls]
    assert inc.var() / 2 == pytest.approx(1.0, rel=0.05)
    rho = (inc[:, 1:] * inc[:, :-1]).mean() / inc.var()
    assert rho == pytest.approx(2 ** (alpha - 1) - 1, abs=0.03)


def test_labels_line_up_with_andi_datasets_two_state_fixture():
    """Change points from labels as andi-datasets finds them; steps after a change point carry
    the new state in andi-datasets' two-state tracks and in ours alike (forward convention)."""
    z = np.load(Path(__file__).parent / "data" / "andi2" / "two_state.npz")
    cps = label_changepoints(z["d"], z["alpha"], z["state"])
    assert [c.tolist() for c in cps] == [[int(c)] for c in z["changepoints"]]
    ours = multi_state(400, 200, d=(1.0, 0.02), transition=0.01, rng=np.random.default_rng(13))
    for xy, d, changepoints in (
        (z["xy"], z["d"], cps),
        (ours.true_positions, ours.d, ours.changepoints),
    ):
        log_step = np.log10((np.diff(xy, axis=1) ** 2).sum(-1) / 4 + 1e-12)  # one-step D estimate
        votes = []  # is step c -> c+1 nearer the new D, and step c-1 -> c nearer the old one?
        for i, track_cps in enumerate(changepoints):
            for c in track_cps:
                old, new = np.log10(d[i, c - 1]), np.log10(d[i, c])
                votes.append(abs(log_step[i, c] - new) < abs(log_step[i, c] - old))
                votes.append(abs(log_step[i, c - 1] - old) < abs(log_step[i, c - 1] - new))
        assert np.mean(votes) > 0.85  # a one-frame shift would give about 0.5
