#!/usr/bin/env bash
# Every GPU measurement the open issues ask for, in one call on a lent CUDA machine.
#
#   tools/gpu_session.sh --prepare        # here, with PyPI: what the device image lacks -> .whl/
#   tools/gpu_session.sh [--only LIST]    # there, from the repo root: carry .whl, results -> $OUT
#
# LIST is a comma-separated subset of: nr (build neural_renderer from the carried sdist),
# tests (the CUDA tests), mano, render, train (the three benchmarks); default: all of them,
# about 8 minutes on an H100 (neural_renderer's build ~2 min, bench_train ~3 min).
#
# The device image has CUDA, nvcc and a python3 with torch, torchvision, numpy, scipy, pandas,
# matplotlib, pyyaml, tqdm, pillow and pytest, and no network: hand_lib runs from the tree
# (PYTHONPATH), smplx (bench_mano's peer), ninja (builds the fused CPU skinning kernel) and
# neural-renderer-pytorch's sdist (bench_render's peer) come from .whl/. Each step's JSON and log land in $OUT (the device tool's folder that
# comes back) or results/gpu; a failing step is reported and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."

NR_SDIST=neural_renderer_pytorch-1.1.3.tar.gz
if [ "${1:-}" = "--prepare" ]; then
  set -e
  py=${PYTHON:-.venv/bin/python}
  mkdir -p .whl
  "$py" -m pip download --no-deps --only-binary :all: -d .whl smplx==0.1.28 ninja==1.13.2
  "$py" -m pip download --no-deps --no-binary :all: --no-build-isolation -d .whl \
    neural-renderer-pytorch==1.1.3
  ls -l .whl
  echo "carry .whl: run(command=\"tools/gpu_session.sh\", carry=[\".whl\"])"
  exit 0
fi

only=nr,tests,mano,render,train
if [ "${1:-}" = "--only" ]; then only=$2; fi
out=${OUT:-results/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}  # DEVICE=cpu only to try this script without a GPU
export PYTHONPATH=$PWD MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
summary="$out/gpu_session.txt"
: >"$summary"

want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
step() {  # step NAME CMD...: run, log to $out/NAME.log, record status and seconds
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then status=ok; else status="FAILED (rc $?)"; fi
  printf '%-8s %-14s %4ss\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$summary"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee -a "$summary"

for wheel in .whl/smplx-*.whl .whl/ninja-*.whl; do  # ninja: the fused CPU skinning kernel
  [ -f "$wheel" ] && "$py" -m pip install --quiet --no-index --no-deps "$wheel" >>"$summary" 2>&1
done
if want nr; then
  if [ -f ".whl/$NR_SDIST" ]; then
    step nr "$py" tools/install_neural_renderer.py --sdist ".whl/$NR_SDIST"
  else
    echo "nr       skipped: .whl/$NR_SDIST not carried (tools/gpu_session.sh --prepare)" \
      | tee -a "$summary"
  fi
fi
if want tests; then
  # the renderer tests compare with neural_renderer on CUDA; the MANO and training tests
  # exercise the layer and the trainer (AMP path) with the GPU present
  step tests "$py" -m pytest -q -p no:cacheprovider tests/test_render.py \
    tests/test_mano_layer.py tests/test_mano_fused.py tests/test_geometry_rotations.py
fi
if want mano; then
  step mano "$py" benchmarks/bench_mano.py --device "$device" --batch 1 64 1024 16384 \
    --json "$out/mano_$device.json"
  # eager CUDA runs ~100 small kernels per forward+backward; CUDA graphs remove the launches
  step mano_cg "$py" benchmarks/bench_mano.py --device "$device" --batch 64 1024 16384 \
    --compile reduce-overhead --json "$out/mano_${device}_compiled.json"
fi
if want render; then
  step render "$py" benchmarks/bench_render.py --device "$device" --batches 1 32 64 \
    --json "$out/render_$device.json"
fi
if want train; then
  step train "$py" benchmarks/bench_train.py --device "$device" --method both --amp \
    --json "$out/train_$device.json"
fi
echo "results in $out:" && ls "$out"
