#!/usr/bin/env bash
# The GPU checks in one go (about 8 minutes on one GPU), every figure written to one file:
# the CUDA-only tests, a short training run of each variant in bf16-mixed and 16-mixed, each
# variant's training step at 256 px (fp32 and bf16, channels_last, torch.compile; a batch
# that fills much of a large card) and inference latency at 512 px.
# Usage: benchmarks/gpu_check.sh [--device cuda|cpu] [--out gpu_check.txt]
# --device cpu is a dry run at tiny sizes: it checks the script itself on a machine without a
# GPU (tests/test_bench_step.py runs it).
set -euo pipefail
device=cuda
out=gpu_check.txt
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "error: unknown option $1: use --device cuda|cpu and --out FILE" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
if [[ $device == cpu ]]; then
  # one precision, one step case and no compilation: enough to run every line
  # 128 px: the smallest side the PConv U-Net's 7 levels take
  trainer=cpu size=128 batch=2 steps=1 infer=128 precisions="32-true"
  tests=(-k "no_test_is_named_this") step_options=(--cases ec_inpaint)
else
  trainer=gpu size=256 batch=32 steps=10 infer=512 precisions="bf16-mixed 16-mixed"
  tests=(-k "cuda or gpu") step_options=(--compile)
fi
{
  echo "# gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) --device $device"
  "$python" - <<'PY'
import torch
print("torch", torch.__version__, "| cuda", torch.version.cuda,
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
PY
  echo "## CUDA-only tests"
  "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" tests || [[ $? == 5 ]]
  echo "## short training runs"
  for model in context_encoder pconv edgeconnect; do
    # the machine may have no network: PConv's and EdgeConnect's VGG terms on random weights
    vgg=()
    [[ $model == context_encoder ]] || vgg=(loss.vgg_weights=none)
    for precision in $precisions; do
      start=$(date +%s)
      "$python" train.py debug=limit model="$model" trainer="$trainer" trainer.accelerator="$trainer" \
        trainer.precision="$precision" data.image_size="$size" data.batch_size="$batch" "${vgg[@]}" \
        hydra.run.dir="$runs/$model-$precision" > "$runs/$model-$precision.log" 2>&1
      echo "$model $precision: trained and validated in $(( $(date +%s) - start )) s"
    done
  done
  echo "## training step at $size px, batch $batch"
  "$python" benchmarks/bench_step.py --device "$device" --size "$size" --batch "$batch" \
    --steps "$steps" --warmup 1 --precisions 32-true bf16-mixed --channels-last "${step_options[@]}"
  echo "## inference latency at $infer px"
  for model in context_encoder pconv edgeconnect; do
    "$python" benchmarks/bench_inference.py --device "$device" --model "$model" --size "$infer" --repeats 3
  done
} 2>&1 | tee "$out"
