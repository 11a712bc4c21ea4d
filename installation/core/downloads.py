"""The download policy and where models live: nothing downloads at show time unless
someone set JADONG_ALLOW_DOWNLOAD=1; the `fetch-models` command fetches instead, and every
"model missing" message names it. Also the cache folders the engines read from.

Stdlib only, so any room may ask before it imports an engine.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

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


# --- is the hub reachable? ------------------------------------------------------------------
# huggingface_hub retries every request five times with backoff (about 45 s for a show's
# models) before it admits there is no network; `fetch-models` asks once, quickly, instead.

HUB_ENDPOINT = "https://huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline_by_env() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1, on, yes, true; any case)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def hub_endpoint() -> str:
    """The hub downloads come from: $HF_ENDPOINT (a mirror) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT", "").strip() or HUB_ENDPOINT).rstrip("/")


def _why_unreachable(exc: BaseException, host: str, timeout_s: float) -> str:
    reason = getattr(exc, "reason", exc)  # URLError wraps the socket error
    if isinstance(reason, socket.gaierror):
        return f"{host} cannot be resolved ({reason.strerror or reason}; no network or no DNS)"
    if isinstance(reason, ConnectionRefusedError):
        return f"{host} refused the connection"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"{host} did not answer within {timeout_s:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"no secure connection to {host} ({reason})"
    return f"cannot connect to {host} ({getattr(reason, 'strerror', None) or reason})"


def hub_unreachable_reason(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str:
    """'' when the Hugging Face hub answers an HTTP request within `timeout_s` (any status:
    an answer is an answer), else why not, in words. Honours HF_HUB_OFFLINE, HF_ENDPOINT and
    the usual proxy variables. Never raises; takes at most about `timeout_s` (a name lookup
    that hangs is left behind in its daemon thread)."""
    if hub_offline_by_env():
        return "HF_HUB_OFFLINE is set; unset it to download"
    endpoint = hub_endpoint()
    host = urlsplit(endpoint).hostname
    if not host:
        return f"HF_ENDPOINT {endpoint!r} names no host"
    outcome: list[str] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint + "/", method="HEAD"), timeout=timeout_s).close()
            outcome.append("")
        except urllib.error.HTTPError:  # the hub answered, if not with 200
            outcome.append("")
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
            outcome.append(_why_unreachable(exc, host, timeout_s))

    worker = threading.Thread(target=ask, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    return outcome[0] if outcome else f"{host} did not answer within {timeout_s:g} s"


def copy_cache_hint(fetch_command: str = FETCH_COMMAND) -> str:
    """How to get models onto a machine without internet: fetch them elsewhere and copy the cache."""
    return (f"to fetch them on another machine: run `{fetch_command}` there while online, then copy its "
            f"Hugging Face cache folder (~/.cache/huggingface/hub unless HF_HOME or HF_HUB_CACHE is set there) "
            f"to {hf_cache_dir()} on this machine (or set HF_HUB_CACHE to wherever you copied it)")
