"""The download policy and where models live: nothing downloads at show time unless
someone set JADONG_ALLOW_DOWNLOAD=1; the `fetch-models` command fetches instead, and every
"model missing" message names it. Also the cache folders the engines read from.

Stdlib only, so any room may ask before it imports an engine.
"""

from __future__ import annotations

import os
from pathlib import Path

ALLOW_DOWNLOAD_ENV = "JADONG_ALLOW_DOWNLOAD"
FETCH_COMMAND = "python run.py fetch-models"
FETCH_HINT = f"run `{FETCH_COMMAND}` while online"
CACHE_ENV = "JADONG_CACHE_DIR"


def download_allowed() -> bool:
    """Downloads at show time happen only when someone asked for them by name (surrounding
    whitespace forgiven: a value written by a shell script often ends in a newline)."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip() == "1"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now rather than at import, so a
    show (or a test) that sets HF_HUB_CACHE or HF_HOME later is honoured."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def jadong_cache_dir() -> Path:
    """Where Jadong keeps what it builds from installed packages ($JADONG_CACHE_DIR, else
    ~/.cache/jadong)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jadong"
