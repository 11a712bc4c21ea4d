"""Where a model runs: the one rule every engine follows for a show's `device` setting
("auto", "cpu" or "cuda").

Each engine counts the CUDA devices its own library sees and passes the count in (torch and
CTranslate2 can disagree: a CPU-only wheel of one beside a CUDA build of the other), so this
module imports neither.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def choose_device(requested: str, cuda_devices: int, setting: str = "device", seen_by: str = "the engine") -> str:
    """"cpu" or "cuda" for a show's `requested` device, given how many CUDA devices the
    engine's library sees. "auto" takes the GPU when there is one. A requested GPU that is
    not there runs on the CPU, with a warning naming `setting` and `seen_by` (e.g.
    "generator.device", "torch 2.5"): a show file written for the GPU machine and started on
    another should paint slowly rather than not at all."""
    if requested not in DEVICES:
        raise ValueError(f"{setting}: expected one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu":
        return "cpu"
    if cuda_devices > 0:
        return "cuda"
    if requested == "cuda":
        log.warning("%s is 'cuda' but %s sees no CUDA GPU (a CPU-only build, or no driver); running on the CPU",
                    setting, seen_by)
    return "cpu"
