#!/usr/bin/env bash
# Sets up everything Jadong needs on a Debian/Ubuntu machine: system packages (when root or
# sudo is available), the virtual environment in .venv, PyTorch and the Python packages.
# Safe to run again: it only installs what is missing.
#
#   JADONG_TORCH=cpu   (default where no NVIDIA GPU is found) the CPU build, torch==2.13.0
#   JADONG_TORCH=cuda  (default where nvidia-smi works) PyPI's Linux torch, a CUDA build
#   JADONG_SKIP_APT=1  skip system packages (install them yourself, see README)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH_VERSION=2.13.0
# chromium and chromium-driver: the operator's page tests drive a real browser (selenium).
# libavahi-client3: the NDI runtime that ndi-python bundles links it (NDI in and out).
APT_PACKAGES=(espeak-ng ffmpeg xvfb x11-utils imagemagick liblo-tools libportaudio2
              pulseaudio pulseaudio-utils fonts-nanum chromium chromium-driver libavahi-client3)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ "${JADONG_SKIP_APT:-0}" != 1 ] && command -v dpkg >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
      say "cannot install system packages (not root, no sudo): ${missing[*]}"
    else
      say "installing system packages: ${missing[*]}"
      $SUDO apt-get update -q
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip)

torch_kind=${JADONG_TORCH:-}
if [ -z "$torch_kind" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then torch_kind=cuda; else torch_kind=cpu; fi
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if [ "$torch_kind" = cuda ]; then
    say "installing PyTorch (CUDA build from PyPI)"
    "${PIP[@]}" install -q "torch>=${TORCH_VERSION}"
  else
    say "installing PyTorch ${TORCH_VERSION} (CPU)"
    "${PIP[@]}" install -q "torch==${TORCH_VERSION}" || {
      say "torch==${TORCH_VERSION} not found locally; trying PyTorch's CPU wheel index"
      "${PIP[@]}" install -q "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/cpu"
    }
  fi
fi

say "installing Python packages"
"${PIP[@]}" install -q -r requirements-dev.txt
# The optional openai-whisper engine, without its triton requirement (see requirements-dev.txt).
"${PIP[@]}" install -q --no-deps "openai-whisper==20250625"
# The optional mediapipe (faces and silhouettes for the vision stage), without its declared
# numpy<2/jax/opencv-contrib (see requirements-dev.txt). No wheel for this Python or machine:
# the vision stage uses OpenCV's Haar cascade and background subtraction instead.
"${PIP[@]}" install -q --no-deps "mediapipe==0.10.21" ||
  say "mediapipe 0.10.21 is not available here: the vision stage uses OpenCV alone (fine, a little slower)"

say "ready: $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
