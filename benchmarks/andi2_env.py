"""The andi-datasets side of ``benchmarks/andi2.py``: data generation and scoring.

Runs ONLY in the throwaway virtualenv that has andi-datasets (it pins numpy <= 1.26.4 and is never
a dependency of napari-step); ``benchmarks/andi2.py`` calls it as a subprocess::

    /work/andi_env/bin/python benchmarks/andi2_env.py generate OUT --exps-per-model 1 --fovs 2
    /work/andi_env/bin/python benchmarks/andi2_env.py twostate OUT.npz --tracks 200
    /work/andi_env/bin/python benchmarks/andi2_env.py score REF RES [RES ...] --json scores.json

``generate`` writes a challenge-shaped reference folder ``OUT/ref/track_2/exp_{e}/``
(trajs_fov_f.csv, traj_labs_fov_f.txt, ensemble_labels.txt) with ``challenge_phenom_dataset``
and the challenge's default parameters (models 1..5 each ``--exps-per-model`` times, ``--fovs``
FOVs per experiment, localisation noise 0.12 px) and ``OUT/models.json`` (model per experiment).
``twostate`` writes two-state Brownian switching tracks (``models_phenom.multi_state``, switching
probability ``--p-switch`` per frame, D ratio log-uniform in ``--ratios``, fast D 1 px^2/frame,
noise-free; per-frame D labels in the forward convention).
``score`` runs andi-datasets' own single-trajectory scorer (``run_single_task`` ->
``error_SingleTraj_dataset`` per experiment) on each submission folder and prints/writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

warnings.filterwarnings("ignore")

MODEL_NAMES = ["single_state", "multi_state", "immobile_traps", "dimerization", "confinement"]
METRICS = ["rmse_cp", "jaccard_cp", "mae_alpha", "msle_k", "f1_state"]


def generate(out: Path, exps_per_model: int, fovs: int, seed: int) -> None:
    from andi_datasets.datasets_challenge import challenge_phenom_dataset

    np.random.seed(seed)  # noqa: NPY002 (andi-datasets draws from the global RNG only)
    models = [m for m in range(1, 6) for _ in range(exps_per_model)]
    ref = out / "ref" / "track_2"
    with TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        challenge_phenom_dataset(experiments=models, num_fovs=fovs, save_data=True, path=raw)
        for e in range(len(models)):
            exp_dir = ref / f"exp_{e}"
            exp_dir.mkdir(parents=True, exist_ok=True)
            weights, ens, header = 0.0, None, ""
            for f in range(fovs):
                shutil.copy(raw / f"trajs_exp_{e}_fov_{f}.csv", exp_dir / f"trajs_fov_{f}.csv")
                shutil.copy(
                    raw / f"traj_labs_exp_{e}_fov_{f}.txt", exp_dir / f"traj_labs_fov_{f}.txt"
                )
                ens_file = raw / f"ens_labs_exp_{e}_fov_{f}.txt"
                header = ens_file.read_text().splitlines()[0]
                ens = np.loadtxt(ens_file, skiprows=1, delimiter=";").reshape(5, -1)
                weights = weights + ens[-1]
            ens[-1] = weights / np.sum(weights)
            with open(exp_dir / "ensemble_labels.txt", "w") as fh:
                fh.write(header + "\n")
                np.savetxt(fh, ens, delimiter=";")
    names = {f"exp_{e}": MODEL_NAMES[m - 1] for e, m in enumerate(models)}
    (out / "models.json").write_text(json.dumps(names, indent=1) + "\n")


def twostate(out: Path, n_tracks: int, n_frames: int, p_switch: float, ratios, seed: int) -> None:
    from andi_datasets.models_phenom import models_phenom

    np.random.seed(seed)  # noqa: NPY002
    rng = np.random.default_rng(seed)
    mp = models_phenom()
    m = np.array([[1 - p_switch, p_switch], [p_switch, 1 - p_switch]])
    xy, d = [], []
    group = 5
    while len(xy) < n_tracks:
        ratio = float(np.exp(rng.uniform(np.log(ratios[0]), np.log(ratios[1]))))
        pos, lab = mp.multi_state(
            N=group,
            T=n_frames,
            M=m,
            Ds=np.array([[1.0, 0.0], [1.0 / ratio, 0.0]]),
            alphas=np.array([[1.0, 0.0], [1.0, 0.0]]),
        )
        xy.extend(pos.transpose(1, 0, 2))
        d.extend(lab[:, :, 1].T)
    np.savez_compressed(out, xy=np.asarray(xy[:n_tracks]), d=np.asarray(d[:n_tracks]))


def _model_of(exp_dir: Path) -> str:
    header = (exp_dir / "ensemble_labels.txt").read_text().splitlines()[0]
    return header.split(";")[0].split(":")[1].strip()


def _missing(ref: Path, sub: Path) -> int:
    """Trajectories of the reference without a parsable prediction line (the scorer gives them
    the maximum error): the check that a submission is accepted as written."""
    from andi_datasets.utils_challenge import load_file_to_df

    missing = 0
    for truth in (ref / "track_2").glob("exp_*/traj_labs_fov_*.txt"):
        pred = sub / "track_2" / truth.parent.name / truth.name.removeprefix("traj_labs_")
        want = set(load_file_to_df(truth).traj_idx.astype(int))
        got = set(load_file_to_df(pred).traj_idx.astype(int)) if pred.exists() else set()
        missing += len(want - got)
    return missing


def score(ref: Path, submissions: list[Path]) -> dict:
    from andi_datasets.utils_challenge import run_single_task

    exp_dirs = sorted((ref / "track_2").glob("exp_*"), key=lambda p: int(p.name[4:]))
    exp_nums = [int(p.name[4:]) for p in exp_dirs]
    models = {int(p.name[4:]): _model_of(p) for p in exp_dirs}
    out: dict = {"metrics": METRICS, "per_experiment": {}}
    cols = ["RMSE CP", "JSC CP", "alpha", "K", "state"]
    for sub in submissions:
        _, df = run_single_task(exp_nums, 2, str(sub), str(ref))
        df["model"] = [models[int(e)] for e in df["Exp"]]
        out["per_experiment"][str(sub)] = [
            {"exp": int(r["Exp"]), "model": r["model"], "n_tracks": int(r["num_trajs"]),
             **{k: float(r[c]) for k, c in zip(METRICS, cols)}}
            for _, r in df.iterrows()
        ]  # fmt: skip
        res: dict = {}
        for name, part in list(df.groupby("model", sort=False)) + [("overall", df)]:
            w = part["num_trajs"].to_numpy(float)
            res[name] = {
                "n_tracks": int(w.sum()),
                **{k: float(np.average(part[c].to_numpy(float), weights=w))
                   for k, c in zip(METRICS, cols)},
            }  # fmt: skip
        res["overall"]["missing_trajectories"] = _missing(ref, sub)
        out[str(sub)] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out", type=Path)
    g.add_argument("--exps-per-model", type=int, default=1)
    g.add_argument("--fovs", type=int, default=2)
    g.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("twostate")
    t.add_argument("out", type=Path)
    t.add_argument("--tracks", type=int, default=200)
    t.add_argument("--frames", type=int, default=200)
    t.add_argument("--p-switch", type=float, default=0.03)
    t.add_argument("--ratios", type=float, nargs=2, default=(4.0, 50.0))
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("ref", type=Path)
    s.add_argument("res", type=Path, nargs="+")
    s.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a.out, a.exps_per_model, a.fovs, a.seed)
    elif a.cmd == "twostate":
        twostate(a.out, a.tracks, a.frames, a.p_switch, a.ratios, a.seed)
    else:
        result = score(a.ref, a.res)
        text = json.dumps(result, indent=1)
        if a.json:
            a.json.write_text(text + "\n")
        else:
            print(text)


if __name__ == "__main__":
    main()
