"""The ``napari-step`` command: demo, analyze, train, benchmark-style reproductions."""

from __future__ import annotations

import argparse
import sys


def _cmd_train(args):
    from .model import DEFAULT_D_CONFIG, PAPER_D_CONFIG
    from .train import TrainConfig, train

    base = PAPER_D_CONFIG if args.config == "paper" else DEFAULT_D_CONFIG
    model_config = type(base)(**{**base.__dict__, "dim": args.dim})
    tc = TrainConfig(batch_size=args.batch_size, lr=args.lr, total_steps=args.steps, seed=args.seed)
    record = train(
        args.out,
        model_config,
        tc,
        resume=not args.restart,
        max_minutes=args.minutes,
        device=args.device,
        fit_schedule=args.fit_schedule,
        workers=args.workers,
    )
    last = record["validation"][-1]
    print(
        f"step {record['step']}, {record['samples_seen']} tracks seen, "
        f"val rel err {last['val_rel_err']:.4f}, L1(log10 D) {last['val_l1_log10']:.4f} -> {args.out}"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-step", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or resume a STEP D model on simulated tracks")
    t.add_argument("--out", required=True, help="checkpoint path (resumed if it exists)")
    t.add_argument("--config", choices=["default", "paper"], default="default")
    t.add_argument("--dim", type=int, default=2, choices=[1, 2, 3])
    t.add_argument("--minutes", type=float, default=60.0, help="wall-time budget")
    t.add_argument("--steps", type=int, default=20000, help="length of the lr schedule")
    t.add_argument("--fit-schedule", action="store_true", help="size the schedule to --minutes")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    t.add_argument("--workers", type=int, default=None, help="data simulation processes")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.set_defaults(func=_cmd_train)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"napari-step: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
