"""AnDi-2 phenomenological models with space: immobile traps, dimerisation, compartments.

Particles move in fields: square boxes of side ``box`` px with reflecting walls, ``per_field``
particles each (andi-datasets' challenge: 50 particles in 230.4 px). Every field has its own
traps or compartments; fields do not interact. Motion is fBm with per-axis step variance 2 D
(px^2/frame), restarted whenever a particle changes state. Labels follow the forward convention
(the state at frame t is decided from the position at frame t and governs the step t -> t+1);
see :mod:`napari_step.simulate.phenomenological` for the result type and the state classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ._common import RngLike, as_rng
from ._increments import IncrementStream, unit_vectors
from .phenomenological import (
    CONFINED,
    IMMOBILE,
    PhenomTracks,
    check_motion,
    finish,
    per_track,
    state_class,
)

__all__ = ["immobile_traps", "confinement", "dimerisation", "place_compartments"]

ANDI_BOX = 1.8 * 128  # px: the challenge's simulated environment around a 128 px field of view


def _check_spatial(dim: int, box: float, per_field: int) -> None:
    if dim not in (2, 3):
        raise ValueError(f"the spatial models need dim 2 or 3, not {dim}")
    if not box > 0 or per_field < 1:
        raise ValueError(f"box must be > 0 px and per_field >= 1, got {box}, {per_field}")


def _fields(n: int, per_field: int, box: float, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Field of every particle and the field origins (fields side by side along x, 2 box apart)."""
    field_of = np.arange(n) // per_field
    origins = np.zeros((field_of.max(initial=-1) + 1, dim))
    origins[:, 0] = 2.0 * box * np.arange(origins.shape[0])
    return field_of, origins


@dataclass
class _World:
    """Particles in their fields: the path (N, T + 1, dim) in global px and the increments."""

    field_of: np.ndarray
    origins: np.ndarray
    origin: np.ndarray
    box: float
    path: np.ndarray
    stream: IncrementStream

    def move(self, t: int, step: np.ndarray) -> None:
        """Frame t + 1 = frame t + step, folded back into the boxes."""
        self.path[:, t + 1] = _reflect_box(self.path[:, t] + step, self.origin, self.box)

    def local_path(self) -> np.ndarray:
        return self.path - self.origin[:, None]


def _world(n: int, n_frames: int, dim: int, box: float, per_field: int, rng) -> _World:
    """Fields, a uniform start in the box and fresh increments."""
    _check_spatial(dim, box, per_field)
    field_of, origins = _fields(n, per_field, box, dim)
    origin = origins[field_of]
    path = np.empty((n, n_frames + 1, dim))
    path[:, 0] = origin + rng.uniform(0, box, size=(n, dim))
    return _World(field_of, origins, origin, box, path, IncrementStream(n, n_frames + 1, dim, rng))


def _reflect_box(p: np.ndarray, origin: np.ndarray, box: float) -> np.ndarray:
    """Positions folded back into their box [origin, origin + box] by reflecting walls."""
    local = p - origin
    out = ((local < 0) | (local > box)).any(-1)
    if not out.any():
        return p
    fixed = local[out]
    while ((fixed < 0) | (fixed > box)).any():
        fixed = box - np.abs(box - np.abs(fixed))
    p = p.copy()
    p[out] = origin[out] + fixed
    return p


def _as_states(d, alpha, n: int, k: int):
    d, alpha = per_track(d, n, k, "d"), per_track(alpha, n, k, "alpha")
    check_motion(d, alpha)
    if (d == 0).any():
        raise ValueError("D must be > 0 in every state of the spatial models")
    return d, alpha


def immobile_traps(
    n_tracks: int,
    n_frames: int = 200,
    d: float | np.ndarray = 1.0,
    alpha: float | np.ndarray = 1.0,
    n_traps: int = 300,
    trap_radius: float = 0.4,
    p_bind: float = 1.0,
    p_unbind: float = 0.01,
    box: float = ANDI_BOX,
    per_field: int = 50,
    d_trapped: float = 0.0,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """Free particles that stop in traps (AnDi-2 ``immobile_traps``; defaults: the challenge's).

    A free particle closer than ``trap_radius`` to a trap binds with probability ``p_bind`` per
    frame and stays where it is (D = ``d_trapped``, usually 0: only the noise moves the spot);
    a trapped particle unbinds with probability ``p_unbind`` per frame.

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks (particles) and frames.
    d, alpha : float or array_like, shape (N,)
        Free motion: D in px^2/frame and anomalous exponent in (0, 2).
    n_traps : int
        Traps per field, uniformly placed.
    trap_radius : float
        Capture radius, px.
    p_bind, p_unbind : float
        Binding and unbinding probabilities per frame.
    box : float
        Side of a field, px.
    per_field : int
        Particles per field.
    d_trapped : float
        Residual D of trapped particles, px^2/frame.
    dim : int
        Spatial dimension, 2 or 3.
    exposure, sigma
        Motion blur and localisation noise (see :func:`napari_step.simulate.multi_state`).
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    PhenomTracks
        Positions in field coordinates (px); ``info["traps"]`` (fields, n_traps, dim).
    """
    rng = as_rng(rng)
    d, alpha = _as_states(d, alpha, n_tracks, 1)
    w = _world(n_tracks, n_frames, dim, box, per_field, rng)
    traps = rng.uniform(0, box, size=(w.origins.shape[0], n_traps, dim))
    tree = cKDTree((traps + w.origins[:, None]).reshape(-1, dim))
    trapped = _trap_walk(w, tree, d, alpha, trap_radius, p_bind, p_unbind, d_trapped, rng)
    d_t = np.where(trapped, d_trapped, d)
    alpha_t = np.where(trapped, 0.0 if d_trapped == 0 else 1.0, alpha)
    state = np.where(trapped, IMMOBILE, state_class(d, alpha, np.zeros_like(d)))
    info = {"model": "immobile_traps", "traps": traps, "field": w.field_of}
    return finish(w.local_path(), d_t, alpha_t, state, exposure, sigma, rng, info)


def _trap_walk(w: _World, tree, d, alpha, radius, p_bind, p_unbind, d_trapped, rng):
    """Walk with binding to and unbinding from traps; (N, T) trapped at each frame."""
    n, n_steps, dim = w.path.shape[0], w.path.shape[1] - 1, w.path.shape[2]
    trapped = np.zeros((n, n_steps), dtype=bool)
    bound = np.zeros(n, dtype=bool)
    for t in range(n_steps):
        near = tree.query(w.path[:, t], distance_upper_bound=radius)[0] < radius
        unbind = bound & (rng.uniform(size=n) < p_unbind)
        bound = (bound & ~unbind) | (~bound & near & (rng.uniform(size=n) < p_bind))
        fresh = np.flatnonzero(unbind) if t else np.arange(n)  # every fBm starts at frame 0
        w.stream.restart(fresh, alpha[fresh, 0], t)
        trapped[:, t] = bound
        step = np.sqrt(2.0 * d) * w.stream.next()
        step[bound] = np.sqrt(2.0 * d_trapped) * rng.standard_normal((bound.sum(), dim))
        w.move(t, step)
    return trapped


def place_compartments(n: int, radius: float, box: float, dim: int, rng) -> np.ndarray:
    """Random non-overlapping compartments inside a box.

    Parameters
    ----------
    n : int
        Compartments wanted (fewer are returned when random placement finds no more room).
    radius, box : float
        Compartment radius and box side, px.
    dim : int
        Spatial dimension.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    ndarray, shape (m, dim)
        Centres in px, at least ``radius`` from the walls and 2 ``radius`` apart.
    """
    if not 0 < 2 * radius < box:
        raise ValueError(f"compartments of radius {radius} px do not fit in a box of {box} px")
    centres = np.empty((0, dim))
    for _ in range(100):  # rounds of candidates; far more than enough below dense packing
        cand = rng.uniform(radius, box - radius, size=(4 * n, dim))
        for c in cand:
            if len(centres) == n:
                return centres
            if len(centres) == 0 or np.min(np.linalg.norm(centres - c, axis=1)) > 2 * radius:
                centres = np.vstack([centres, c])
    return centres


def _reflect_in_ball(p0, p1, centre, radius):
    """Specular reflections of the moves p0 -> p1 (p0 inside) at the sphere until p1 is inside."""
    p0, p1 = p0.copy(), p1.copy()
    for _ in range(50):
        out = np.linalg.norm(p1 - centre, axis=1) > radius
        if not out.any():
            break
        a0, a1, c = p0[out], p1[out], centre[out]
        u = a1 - a0
        rel = a0 - c
        qa = (u * u).sum(1)
        qb = 2 * (u * rel).sum(1)
        qc = np.minimum((rel * rel).sum(1) - radius**2, 0.0)
        s = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
        hit = a0 + s[:, None] * u
        normal = (hit - c) / radius
        rest = a1 - hit
        rest -= 2 * (rest * normal).sum(1, keepdims=True) * normal
        p0[out] = hit - 1e-9 * normal
        p1[out] = hit + rest
    return p1


def _start_inside(w: _World, centres, comp_field, radius: float, rng) -> np.ndarray:
    """Start positions uniform inside a random compartment of each particle's field."""
    start = w.path[:, 0].copy()
    dim = start.shape[1]
    for f in np.unique(w.field_of):
        rows = np.flatnonzero(w.field_of == f)
        own = np.flatnonzero(comp_field == f)
        pick = own[rng.integers(own.size, size=rows.size)]
        r = radius * rng.uniform(size=(rows.size, 1)) ** (1.0 / dim)
        start[rows] = centres[pick] + r * unit_vectors((rows.size,), dim, rng)
    return start


def _confined_step(path_t, step, comp, centres, radius, transmittance, rng):
    """Move; a confined particle leaving its compartment passes with ``transmittance``."""
    p1 = path_t + step
    confined = comp >= 0
    out = np.zeros(len(comp), dtype=bool)
    out[confined] = np.linalg.norm(p1[confined] - centres[comp[confined]], axis=1) > radius
    stay = out & (rng.uniform(size=len(comp)) >= transmittance)
    if stay.any():
        p1[stay] = _reflect_in_ball(path_t[stay], p1[stay], centres[comp[stay]], radius)
    return p1


def _membership(tree: cKDTree, p: np.ndarray, radius: float) -> np.ndarray:
    """Index of the compartment containing each position, -1 outside all."""
    dist, idx = tree.query(p, distance_upper_bound=radius)
    return np.where(dist < radius, idx, -1)


def confinement(
    n_tracks: int,
    n_frames: int = 200,
    d: float | np.ndarray = (1.0, 0.05),
    alpha: float | np.ndarray = 1.0,
    n_compartments: int = 30,
    radius: float = 5.0,
    transmittance: float = 0.1,
    box: float = ANDI_BOX,
    per_field: int = 50,
    start_inside: bool = False,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """Diffusion among circular compartments (AnDi-2 ``confinement``; defaults: the challenge's).

    Inside a compartment a particle moves with the second state's D and alpha; at the boundary
    it is reflected (specularly) unless it passes, with probability ``transmittance`` per
    attempt; a free particle entering a compartment is confined there. With transmittance 0 the
    MSD of a confined particle plateaus at the compartment size (r^2 for a uniform start in 2-D).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks (particles) and frames.
    d : array_like, shape (2,) or (N, 2)
        D outside and inside compartments, px^2/frame.
    alpha : float or array_like, shape (2,) or (N, 2)
        Anomalous exponents outside and inside, in (0, 2).
    n_compartments : int
        Compartments per field (non-overlapping; fewer if they do not fit).
    radius : float
        Compartment radius, px.
    transmittance : float
        Probability that an attempt to leave a compartment succeeds, in [0, 1].
    box, per_field : float, int
        Field side (px) and particles per field.
    start_inside : bool
        Start every particle uniformly inside a random compartment (else uniformly in the box).
    dim : int
        Spatial dimension, 2 or 3.
    exposure, sigma, rng
        As for :func:`immobile_traps`.

    Returns
    -------
    PhenomTracks
        Positions in field coordinates (px); ``info["centres"]`` per field.
    """
    rng = as_rng(rng)
    d, alpha = _as_states(d, alpha, n_tracks, 2)
    w = _world(n_tracks, n_frames, dim, box, per_field, rng)
    centres = [place_compartments(n_compartments, radius, box, dim, rng) for _ in w.origins]
    comp_field = np.concatenate([np.full(len(c), f) for f, c in enumerate(centres)])
    centres_global = np.concatenate([c + o for c, o in zip(centres, w.origins)])
    if start_inside:
        w.path[:, 0] = _start_inside(w, centres_global, comp_field, radius, rng)
    s = _confinement_walk(w, centres_global, d, alpha, radius, transmittance, rng)
    rows = np.arange(n_tracks)[:, None]
    free_class = state_class(d[:, :1], alpha[:, :1], np.zeros((n_tracks, 1)))
    state = np.where(s == 1, CONFINED, free_class)
    info = {"model": "confinement", "centres": centres, "field": w.field_of}
    return finish(w.local_path(), d[rows, s], alpha[rows, s], state, exposure, sigma, rng, info)


def _confinement_walk(w: _World, centres, d, alpha, radius, transmittance, rng) -> np.ndarray:
    """Walk among compartments; (N, T) 1 inside a compartment at each frame, else 0."""
    n, n_steps = w.path.shape[0], w.path.shape[1] - 1
    tree = cKDTree(centres)
    inside = np.zeros((n, n_steps), dtype=int)
    rows = np.arange(n)
    comp = _membership(tree, w.path[:, 0], radius)
    for t in range(n_steps):
        inside[:, t] = comp >= 0
        changed = np.flatnonzero(inside[:, t] != inside[:, t - 1]) if t else rows
        w.stream.restart(changed, alpha[changed, inside[changed, t]], t)
        step = np.sqrt(2.0 * d[rows, inside[:, t]])[:, None] * w.stream.next()
        p1 = _confined_step(w.path[:, t], step, comp, centres, radius, transmittance, rng)
        w.move(t, p1 - w.path[:, t])
        comp = _membership(tree, w.path[:, t + 1], radius)
    return inside


def _update_pairs(partner, positions, radius, p_bind, p_unbind, rng) -> np.ndarray:
    """Unbind pairs with ``p_unbind``, then bind free particles closer than 2 radius."""
    partner = partner.copy()
    n = len(partner)
    leaders = np.flatnonzero(partner > np.arange(n))
    gone = leaders[rng.uniform(size=leaders.size) < p_unbind]
    freed = np.concatenate([gone, partner[gone]])
    partner[freed] = -1
    candidates = np.flatnonzero(partner < 0)
    candidates = candidates[~np.isin(candidates, freed)]  # no rebinding in the same frame
    if candidates.size > 1:
        pairs = cKDTree(positions[candidates]).query_pairs(2 * radius, output_type="ndarray")
        for i, j in candidates[rng.permutation(pairs)] if len(pairs) else ():
            if partner[i] < 0 and partner[j] < 0 and rng.uniform() < p_bind:
                partner[i], partner[j] = j, i
    return partner


def dimerisation(
    n_tracks: int,
    n_frames: int = 200,
    d: float | np.ndarray = (1.0, 0.05),
    alpha: float | np.ndarray = 1.0,
    radius: float = 0.6,
    p_bind: float = 1.0,
    p_unbind: float = 0.01,
    box: float = ANDI_BOX,
    per_field: int = 50,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """Particles that bind in pairs when they meet (AnDi-2 ``dimerization``).

    Two free particles closer than 2 ``radius`` bind with probability ``p_bind`` per frame and
    then move together (the same steps) with the dimer state's D and alpha of the lower-numbered
    particle; a dimer splits with probability ``p_unbind`` per frame.

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks (particles) and frames.
    d : array_like, shape (2,) or (N, 2)
        D of a free particle and of a dimer, px^2/frame.
    alpha : float or array_like, shape (2,) or (N, 2)
        Anomalous exponents of the free and dimer states, in (0, 2).
    radius : float
        Particle radius, px.
    p_bind, p_unbind : float
        Binding and unbinding probabilities per frame.
    box, per_field : float, int
        Field side (px) and particles per field (sets the density, hence how often they meet).
    dim : int
        Spatial dimension, 2 or 3.
    exposure, sigma, rng
        As for :func:`immobile_traps`.

    Returns
    -------
    PhenomTracks
        Positions in field coordinates (px); ``info["partner"]`` (N, T): the partner of each
        particle per frame, -1 when free.
    """
    rng = as_rng(rng)
    d, alpha = _as_states(d, alpha, n_tracks, 2)
    w = _world(n_tracks, n_frames, dim, box, per_field, rng)
    partners = _dimer_walk(w, d, alpha, radius, p_bind, p_unbind, rng)
    rows = np.arange(n_tracks)[:, None]
    bound = (partners >= 0).astype(int)
    leader = np.where(bound == 1, np.minimum(rows, partners), rows)
    d_t, alpha_t = d[leader, bound], alpha[leader, bound]
    state = state_class(d_t, alpha_t, np.zeros_like(d_t))
    info = {"model": "dimerisation", "partner": partners, "field": w.field_of}
    return finish(w.local_path(), d_t, alpha_t, state, exposure, sigma, rng, info)


def _dimer_walk(w: _World, d, alpha, radius, p_bind, p_unbind, rng) -> np.ndarray:
    """Walk with pair binding; (N, T) partner of each particle at each frame (-1 free)."""
    n, n_steps = w.path.shape[0], w.path.shape[1] - 1
    partners = np.full((n, n_steps), -1)
    rows = np.arange(n)
    partner = partners[:, 0]
    for t in range(n_steps):
        partner = _update_pairs(partner, w.path[:, t], radius, p_bind, p_unbind, rng)
        partners[:, t] = partner
        bound = partner >= 0
        leader = np.where(bound, np.minimum(rows, partner), rows)
        k = bound.astype(int)
        changed = np.flatnonzero(bound != (partners[:, t - 1] >= 0)) if t else rows
        w.stream.restart(changed, alpha[leader[changed], k[changed]], t)
        w.move(t, np.sqrt(2.0 * d[leader, k])[:, None] * w.stream.next()[leader])
    return partners
