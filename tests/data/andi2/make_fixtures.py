"""Make the AnDi-2 fixtures of this folder with andi-datasets itself.

Run in a throwaway virtualenv that has ``andi-datasets`` (it pins numpy <= 1.26.4, so it is never
a dependency of napari-step)::

    python3 -m venv /work/andi_env
    /work/andi_env/bin/pip install numpy==1.26.4 andi-datasets ipython
    /work/andi_env/bin/python tests/data/andi2/make_fixtures.py

Writes (see README.md in this folder):

- ``challenge/ref/track_2/exp_{e}/``: a challenge-shaped reference folder, five experiments (one
  per phenomenological model, challenge default parameters), two FOVs each, three tracks per FOV
  (``trajs_fov_{f}.csv``, ``traj_labs_fov_{f}.txt``, ``ensemble_labels.txt``);
- ``challenge/res/track_2/exp_{e}/``: a reference prediction in the submission format (the truth
  deterministically perturbed) and ``challenge/expected_scores.json``: what andi-datasets' own
  scorer gives for it and for the truth used as a prediction;
- ``two_state.npz``: two-state tracks from ``models_phenom.multi_state`` with exactly one change
  point and per-frame labels (alpha, D, state) and change points, for the convention test.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

from andi_datasets.datasets_challenge import challenge_phenom_dataset  # noqa: E402
from andi_datasets.models_phenom import models_phenom  # noqa: E402
from andi_datasets.utils_challenge import (  # noqa: E402
    codalab_scoring_local,
    error_SingleTraj_dataset,
    label_continuous_to_list,
    load_file_to_df,
)

HERE = Path(__file__).resolve().parent
MODELS = [1, 2, 3, 4, 5]  # single_state, multi_state, immobile_traps, dimerization, confinement
N_FOVS = 2
TRACKS_PER_FOV = 3
SEED = 20240


def _pick_tracks(labels: list, rng: np.random.Generator) -> list[int]:
    """Indices of the tracks kept: prefer tracks with a change point, then short ones."""
    with_cp = [i for i, lab in enumerate(labels) if len(lab) > 5]
    without = [i for i, lab in enumerate(labels) if len(lab) == 5]
    rng.shuffle(with_cp)
    without.sort(key=lambda i: labels[i][-1])
    keep = with_cp[:2]
    keep += without[: TRACKS_PER_FOV - len(keep)]
    keep += [i for i in with_cp if i not in keep][: TRACKS_PER_FOV - len(keep)]
    return sorted(keep)


def _write_fov(exp_dir: Path, fov: int, df, raw_labels: Path, keep: list[int]) -> None:
    """Keep the tracks ``keep`` of one FOV, renumbered 0..n-1; truth lines copied verbatim."""
    lines = raw_labels.read_text().splitlines()
    parts, out_lines = [], []
    for new, old in enumerate(keep):
        line = lines[old]
        assert int(line.split(",")[0]) == old
        out_lines.append(str(new) + line[line.index(",") :])
        part = df[df.traj_idx == old][["traj_idx", "frame", "x", "y"]].copy()
        part["traj_idx"] = float(new)
        parts.append(part)
    (exp_dir / f"traj_labs_fov_{fov}.txt").write_text("\n".join(out_lines) + "\n")
    pd.concat(parts).to_csv(exp_dir / f"trajs_fov_{fov}.csv", index=False, float_format="%.4f")


def _fmt(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def make_challenge(root: Path) -> None:
    np.random.seed(SEED)  # noqa: NPY002 (andi-datasets draws from the global RNG)
    rng = np.random.default_rng(SEED)
    ref = root / "ref" / "track_2"
    with TemporaryDirectory() as tmp:
        trajs, labs, _ = challenge_phenom_dataset(
            experiments=MODELS, num_fovs=N_FOVS, save_data=True, path=Path(tmp) / "raw/"
        )
        for e in range(len(MODELS)):
            exp_dir = ref / f"exp_{e}"
            exp_dir.mkdir(parents=True, exist_ok=True)
            ens_header, weights, ens = None, 0.0, None
            for f in range(N_FOVS):
                k = e * N_FOVS + f
                keep = _pick_tracks(labs[k], rng)
                raw_labs = Path(tmp) / "raw" / f"traj_labs_exp_{e}_fov_{f}.txt"
                _write_fov(exp_dir, f, trajs[k], raw_labs, keep)
                raw = Path(tmp) / "raw" / f"ens_labs_exp_{e}_fov_{f}.txt"
                ens_header = raw.read_text().splitlines()[0]
                ens = np.loadtxt(raw, skiprows=1, delimiter=";").reshape(5, -1)
                weights = weights + ens[-1]
            ens[-1] = weights / weights.sum()
            with open(exp_dir / "ensemble_labels.txt", "w") as fh:
                fh.write(ens_header + "\n")
                np.savetxt(fh, ens, delimiter=";")


def _perturb(line: str, shift: int) -> str:
    """A deterministic imperfect prediction made from one truth line."""
    v = [float(x) for x in line.split(",")]
    idx, body, t_len = int(v[0]), v[1:-1], int(v[-1])
    segs = [body[i : i + 4] for i in range(0, len(body), 4)]  # K, alpha, state, cp (last: no cp)
    out = [idx]
    for j, seg in enumerate(segs):
        k, a, s = seg[0] * 1.5, min(max(seg[1] - 0.1, 0.0), 1.99), seg[2]
        out += [k, a, s]
        if j < len(segs) - 1:
            out.append(int(min(max(seg[3] + shift, 1), t_len - 1)))
    if len(segs) == 1 and t_len >= 40:  # one false change point, same properties both sides
        out += [t_len // 2, out[1], out[2], out[3]]
    out.append(t_len)
    return ",".join(_fmt(x) for x in out)


def make_prediction(root: Path) -> None:
    for exp_dir in sorted((root / "ref" / "track_2").glob("exp_*")):
        res_dir = root / "res" / "track_2" / exp_dir.name
        res_dir.mkdir(parents=True, exist_ok=True)
        for truth in sorted(exp_dir.glob("traj_labs_fov_*.txt")):
            fov = truth.name.removeprefix("traj_labs_")
            lines = truth.read_text().splitlines()
            shift = 2 if exp_dir.name != "exp_3" else -3
            (res_dir / fov).write_text("\n".join(_perturb(ln, shift) for ln in lines) + "\n")
        ens = np.loadtxt(exp_dir / "ensemble_labels.txt", skiprows=1, delimiter=";").reshape(5, -1)
        ens[2] *= 1.5
        header = (exp_dir / "ensemble_labels.txt").read_text().splitlines()[0]
        with open(res_dir / "ensemble_labels.txt", "w") as fh:
            fh.write(header + "\n")
            np.savetxt(fh, ens, delimiter=";")


def _score(truth: Path, pred: Path) -> list[float]:
    out = error_SingleTraj_dataset(
        load_file_to_df(pred), load_file_to_df(truth), prints=False, disable_tqdm=True
    )
    return [float(x) for x in out]


def score_prediction(root: Path) -> dict:
    names = ["rmse_cp", "jaccard_cp", "mae_alpha", "msle_k", "f1_state"]
    scores: dict = {"metrics": names, "per_fov_prediction": {}, "per_fov_truth_as_prediction": {}}
    for truth in sorted((root / "ref" / "track_2").glob("exp_*/traj_labs_fov_*.txt")):
        key = f"{truth.parent.name}/{truth.name.removeprefix('traj_labs_')}"
        pred = root / "res" / "track_2" / truth.parent.name / truth.name.removeprefix("traj_labs_")
        scores["per_fov_prediction"][key] = _score(truth, pred)
        scores["per_fov_truth_as_prediction"][key] = _score(truth, truth)
    with TemporaryDirectory() as tmp:
        codalab_scoring_local(str(root / "res"), str(root / "ref"), tmp)
        lines = (Path(tmp) / "scores.txt").read_text().splitlines()
    scores["codalab_scoring_local"] = {
        ln.split(":")[0]: float(ln.split(":")[1]) for ln in lines if ln.startswith("tr2")
    }
    return scores


def make_two_state(path: Path, n_each: int = 6, sigma: float = 0.12) -> None:
    """Two-state tracks, one switch each (D ratio 50, alpha 1), noise-free and noisy positions."""
    np.random.seed(SEED + 1)  # noqa: NPY002
    mp = models_phenom()
    xy, labels, cps = [], [], []
    for ds in ([[1.0, 0.0], [0.02, 0.0]], [[0.02, 0.0], [1.0, 0.0]]):
        got = 0
        while got < n_each:
            pos, lab = mp.multi_state(
                N=20,
                T=200,
                M=np.array([[0.99, 0.01], [0.0, 1.0]]),
                Ds=np.array(ds),
                alphas=np.array([[1.0, 0.0], [1.0, 0.0]]),
                init_state=0,
            )
            for n in range(pos.shape[1]):
                cp, _, _, _ = label_continuous_to_list(lab[:, n, :3])
                if len(cp) == 2 and 40 <= cp[0] <= 160 and got < n_each:
                    xy.append(pos[:, n, :])
                    labels.append(lab[:, n, :3])
                    cps.append(cp[0])
                    got += 1
    xy = np.asarray(xy)
    noisy = xy + np.random.randn(*xy.shape) * sigma  # noqa: NPY002
    np.savez_compressed(
        path,
        xy=xy.astype(np.float32),
        xy_noisy=noisy.astype(np.float32),
        sigma_noise=np.float32(sigma),
        alpha=np.asarray(labels)[:, :, 0].astype(np.float32),
        d=np.asarray(labels)[:, :, 1].astype(np.float32),
        state=np.asarray(labels)[:, :, 2].astype(np.int8),
        changepoints=np.asarray(cps, dtype=np.int32),
    )


def main() -> None:
    root = HERE / "challenge"
    if root.exists():
        shutil.rmtree(root)
    make_challenge(root)
    make_prediction(root)
    scores = score_prediction(root)
    (root / "expected_scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    make_two_state(HERE / "two_state.npz")


if __name__ == "__main__":
    main()
