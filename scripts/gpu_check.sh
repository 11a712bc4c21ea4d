#!/usr/bin/env bash
# The engine's GPU checks, in one run (< 8 minutes with torch.compile): the GPU tests
# (pytest -m gpu) and the engine benchmark on CUDA. Results land in $OUT (or ./out/gpu).
#
# On the project's device machine (PyTorch, transformers, accelerate there; no diffusers, no
# pydantic, no network), carry the wheels made here first:
#   echo /wheels/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d wheels diffusers==0.42.1 pydantic==2.13.4 \
#     pydantic_core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 importlib_metadata
#   run(command="bash scripts/gpu_check.sh", carry=["wheels"], timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && .venv/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && PY=.venv/bin/python
if [ -d wheels ] && ls wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/jadong-site wheels/*.whl || exit 1
  export PYTHONPATH="/tmp/jadong-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$PWD/out/inductor-cache}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__)" | tee -a "$OUT/gpu.txt"

status=0
timeout 200 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_stream_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 300 "$PY" -m installation.bench engine --device cuda --json > "$OUT/bench_engine.json" 2> "$OUT/bench_engine.log"
[ $? -eq 0 ] || status=1
tail -n 20 "$OUT/bench_engine.log"
cat "$OUT/bench_engine.json"
exit $status
