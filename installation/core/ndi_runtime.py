"""Loading the NDI® runtime, shared by NDI in (inputs/ndi.py) and NDI out (display/ndi_out.py).

Jadong talks NDI through ndi-python (the `NDIlib` module), whose wheel bundles libndi 6 and
mirrors the NDI SDK's C API one to one, so the SDK's own documentation applies. Nothing is
imported here until `load_ndi()` is called: a show without NDI never loads the library, and a
machine where it cannot load (the wrapper not installed, libndi's system libraries missing, a CPU
the runtime refuses) gets one sentence naming the cause and the fix, never a traceback, while the
rest of the show runs.

NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video/); see LICENSES/NDI/.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

# The wrapper the project pins (requirements.txt); named in the fixes below.
WRAPPER = "ndi-python==6.3.2.6"


class NdiUnavailable(RuntimeError):
    """The NDI runtime cannot be used on this machine: `reason` says why, `remedy` what to do;
    the message is both."""

    def __init__(self, reason: str, remedy: str) -> None:
        super().__init__(f"{reason}; {remedy}")
        self.reason = reason
        self.remedy = remedy


@dataclass(frozen=True)
class NdiRuntime:
    """The loaded runtime: `lib` is the NDIlib module (ndi-python), `version` what libndi says
    of itself (e.g. "NDI SDK LINUX ... 6.3.2.0") and `wrapper` the ndi-python version."""

    lib: Any
    version: str
    wrapper: str

    @property
    def summary(self) -> str:
        number = self.version.split()[-1] if self.version else "?"
        return f"NDI runtime {number} (ndi-python {self.wrapper})"


def _remedy(reason: str) -> str:
    if "libavahi" in reason:
        # libndi links Avahi's client library even when no Avahi daemon runs.
        return "install Avahi's client library: sudo apt-get install libavahi-client3 (make setup does it)"
    if "No module named" in reason:
        return f"install the NDI wrapper: make setup (or .venv/bin/pip install {WRAPPER})"
    return f"reinstall the NDI wrapper: .venv/bin/pip install --force-reinstall {WRAPPER}"


def load_ndi() -> NdiRuntime:
    """Import ndi-python and initialise libndi. Cheap after the first call (Python keeps the
    module; NDIlib_initialize may be called again at no cost). Raises NdiUnavailable."""
    try:
        lib = importlib.import_module("NDIlib")
    except ImportError as exc:  # the wrapper missing, or libndi.so or one of its libraries
        reason = str(exc) or type(exc).__name__
        raise NdiUnavailable(f"the NDI runtime cannot load ({reason})", _remedy(reason)) from None
    try:
        ok = bool(lib.initialize())
        version = str(lib.version() or "")
    except Exception as exc:  # a wrapper that imported but does not work
        raise NdiUnavailable(f"the NDI runtime cannot start ({type(exc).__name__}: {exc})", _remedy(str(exc))) from None
    if not ok:
        raise NdiUnavailable("the NDI runtime refuses this CPU (NDIlib_initialize failed: it needs SSE4.2 on x86, "
                             "or NEON on ARM)", "run NDI on another machine; the rest of the show runs here")
    try:
        wrapper = importlib.metadata.version("ndi-python")
    except importlib.metadata.PackageNotFoundError:
        wrapper = "?"
    return NdiRuntime(lib, version, wrapper)


