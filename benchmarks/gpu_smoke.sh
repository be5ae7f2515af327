#!/usr/bin/env bash
# Smoke check for a machine with a CUDA GPU, under five minutes on one GPU:
#   bash benchmarks/gpu_smoke.sh [OUT]        (OUT defaults to runs/gpu_smoke)
# 1. QAT and float training-step times of three subnets on the GPU (also with bf16 autocast of the
#    float steps and channels_last: train.amp, train.channels_last) and on the CPU (same script),
#    and the augmentation's cost per batch (data.augment);
# 2. a short supernet training under torchrun with nccl on one GPU (benchmarks/gpu_smoke.yaml),
#    ending with the largest and smallest subnets cut, BatchNorm-recalibrated and evaluated there;
# 3. the uniform W8A8 policy cut, recalibrated and evaluated on the GPU (qnas eval), a short
#    search and a fine-tune on the GPU, and an INT8 export of the fine-tuned network run by
#    onnxruntime (qnas export checks it).
# Every step prints its wall time; the training log has the per-epoch times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_smoke}
cfg=benchmarks/gpu_smoke.yaml
qnas=(python -m qnas.cli.main)
step() { local t0=$SECONDS; echo "== $1"; shift; "$@"; echo "== $((SECONDS - t0)) s"; }

python -c "import sys, torch; sys.exit(None if torch.cuda.is_available() else 'no CUDA device visible to torch')"
python -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"
rm -rf "$out" && mkdir -p "$out"
step "training step, GPU" python benchmarks/step_time.py --device cuda --repeats 10
step "training step, GPU, bf16 autocast (float steps) + channels_last" \
  python benchmarks/step_time.py --device cuda --repeats 10 --amp bf16 --channels-last
step "augmentation cost per batch, GPU" python benchmarks/augment_cost.py --device cuda
step "training step, CPU" python benchmarks/step_time.py --device cpu --threads 8 --repeats 3
step "supernet training, torchrun + nccl, 1 GPU" \
  torchrun --standalone --nproc_per_node 1 -m qnas.cli.main train --config $cfg --out "$out/supernet" --quiet
grep -E "epoch|finished|subnet after" "$out/supernet/train.log" | tail -8
step "cut + BN recalibration + eval (W8A8)" \
  "${qnas[@]}" eval --config $cfg --supernet "$out/supernet" --policy policies/uniform_w8a8.yaml
step "search (NSGA-II, 16 evaluations)" \
  "${qnas[@]}" search --config $cfg --supernet "$out/supernet" --out "$out/search" --quiet
step "fine-tune the searched policy" \
  "${qnas[@]}" finetune --config $cfg --supernet "$out/supernet" --policy "$out/search/best.yaml" --out "$out/ft" --quiet
step "export (onnxruntime INT8)" \
  "${qnas[@]}" export --config $cfg --checkpoint "$out/ft" --policy "$out/search/best.yaml" --format ort --out "$out/best_int8.onnx"
echo "gpu smoke: all steps passed"
