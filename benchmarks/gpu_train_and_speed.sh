#!/usr/bin/env bash
# Train the default D model on a lent GPU for a fixed budget, then time GPU inference.
# Usage (device tool): bash benchmarks/gpu_train_and_speed.sh MINUTES OUTDIR
set -o pipefail
minutes=${1:-7}; out=${2:-runs}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -m napari_step.cli train --out "$out/step_d_2d.pt" --minutes "$minutes" --fit-schedule \
  --batch-size 256 --lr 1.5e-3 2>&1 | grep -v "batch/s" | tee "$out/train.log"
python3 - <<'PY' 2>&1 | tee "$out/gpu_speed.log"
import time, torch
from napari_step.model import XResAttn, ModelConfig, PAPER_D_CONFIG
for name, cfg in [("default", ModelConfig()), ("paper", PAPER_D_CONFIG)]:
    m = XResAttn(cfg).cuda().eval()
    x = torch.randn(4096, 200, 2, device="cuda").cumsum(1)
    with torch.inference_mode():
        m(x[:512]); torch.cuda.synchronize(); t = time.time()
        for _ in range(3):
            m(x)
        torch.cuda.synchronize(); dt = (time.time() - t) / 3
    print(f"GPU {torch.cuda.get_device_name()} {name}: {4096/dt:.0f} tracks/s (2-D, 200 frames, fp32)")
PY
