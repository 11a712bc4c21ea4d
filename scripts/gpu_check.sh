#!/usr/bin/env bash
# The engine's GPU checks, in one run (< 8 minutes with torch.compile): the GPU tests
# (pytest -m gpu) and the engine benchmark on CUDA. Results land in $OUT (or ./out/gpu).
#
# On the project's device machine (Python 3.12 with PyTorch, transformers, accelerate; no
# diffusers, no pydantic, no network), carry the wheels made here first. pydantic_core is
# compiled per Python version, so fetch it for each one the machine might have; the script
# installs only the one matching its python (two versions of one package stop pip):
#   echo /wheels/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: -d wheels diffusers==0.42.1 pydantic==2.13.4 \
#     annotated-types==0.7.0 typing-inspection==0.4.2
#   for v in 3.10 3.11 3.12 3.13; do pip download --no-deps --only-binary=:all: --python-version $v \
#     --implementation cp --platform manylinux_2_17_x86_64 -d wheels pydantic_core==2.46.4; done
#   run(command="bash scripts/gpu_check.sh", carry=["wheels"], timeout_s=540)
# (importlib_metadata is not needed: diffusers uses the standard library's on Python >= 3.8.)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && .venv/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && PY=.venv/bin/python
PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
echo "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])') ($PYTAG)"

# Install from ./wheels only what this python lacks: pure-python wheels, plus the compiled
# ones built for this python's tag.
if [ -d wheels ] && ls wheels/*.whl >/dev/null 2>&1; then
  want=()
  for w in wheels/*.whl; do
    base=$(basename "$w")
    mod=$(echo "${base%%-*}" | tr '[:upper:]' '[:lower:]')
    case "$base" in
      *-py3-none-any.whl|*-py2.py3-none-any.whl|*-"$PYTAG"-*) ;;
      *) continue ;;  # built for another python
    esac
    "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" 2>/dev/null && continue
    want+=("$w")
  done
  if "$PY" -c "import pydantic" 2>/dev/null; then :; elif ! ls wheels/pydantic_core-*-"$PYTAG"-*.whl >/dev/null 2>&1; then
    echo "no pydantic_core wheel for $PYTAG in ./wheels (see this script's header)" >&2; exit 1
  fi
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing: ${want[*]}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/jadong-site "${want[@]}" || exit 1
    export PYTHONPATH="/tmp/jadong-site${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$PWD/out/inductor-cache}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch, diffusers, pydantic; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'pydantic', pydantic.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "the imports above failed: carry ./wheels (see this script's header)" >&2; exit 1; }

status=0
timeout 200 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/generation/test_stream_gpu.py tests/generation/test_stream_batch.py 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 300 "$PY" -m installation.bench engine --device cuda --json > "$OUT/bench_engine.json" 2> "$OUT/bench_engine.log"
[ $? -eq 0 ] || status=1
# Several streams (issue #13): batched against turns, for 1, 2 and 4 streams.
timeout 240 "$PY" -m installation.bench engine --device cuda --streams 1,2,4 --acceleration graphs --json \
  > "$OUT/bench_streams.json" 2> "$OUT/bench_streams.log"
[ $? -eq 0 ] || status=1
tail -n 20 "$OUT/bench_engine.log"
tail -n 20 "$OUT/bench_streams.log"
cat "$OUT/bench_engine.json" "$OUT/bench_streams.json"
exit $status
