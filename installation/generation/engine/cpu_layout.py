"""Per-convolution memory layout for the engine's compiled CPU frame program.

On the CPU the fastest layout differs per convolution shape: oneDNN's channels-last kernels
win on wide layers, while a 3-channel input convolution or a narrow one on a small image runs
several times faster in plain NCHW (PyTorch then picks its im2col path; channels-last sends
it down a strided fallback). Inductor on its own makes every convolution channels-last.

So, once at prepare time, the engine times each convolution's actual input shape in both
layouts on this machine (like cuDNN's benchmark mode), and while its frame program is traced
it puts a layout conversion in front of each convolution. The modules themselves are left as
they were: the hooks live only for the trace, and the values computed are identical.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# A layout must win by this fraction to replace NCHW: below it the difference is timer noise,
# and each switch costs a conversion copy in the compiled program.
MARGIN = 0.05
# Timing one layout of one convolution stops after 3 runs when all of them would take longer
# than this, so a full-size model is tuned in seconds, not minutes.
SLOW_BUDGET_S = 0.05


@dataclass(frozen=True)
class ConvShape:
    """What decides a convolution's speed: its input shape and its own parameters."""

    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int
    bias: bool


def _convs(modules: Iterable[torch.nn.Module]) -> list[torch.nn.Conv2d]:
    return [m for root in modules for m in root.modules() if isinstance(m, torch.nn.Conv2d)]


def record_inputs(modules: Iterable[torch.nn.Module], run: Callable[[], object]) -> dict[torch.nn.Conv2d, ConvShape]:
    """Runs `run` once (eagerly) and records the input shape each Conv2d saw."""
    seen: dict[torch.nn.Conv2d, ConvShape] = {}

    def hook(mod: torch.nn.Conv2d, args: tuple) -> None:
        seen[mod] = ConvShape(tuple(args[0].shape), tuple(mod.weight.shape), tuple(mod.stride),
                              mod.padding if isinstance(mod.padding, str) else tuple(mod.padding),
                              tuple(mod.dilation), mod.groups, mod.bias is not None)

    handles = [c.register_forward_pre_hook(hook) for c in _convs(modules)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def _time_conv(conv: torch.nn.Conv2d, shape: ConvShape, fmt: torch.memory_format, reps: int) -> float:
    x = torch.randn(shape.input_shape, dtype=conv.weight.dtype, device=conv.weight.device)
    x = x.contiguous(memory_format=fmt)
    conv(x)  # warm-up: oneDNN creates its primitive, the allocator its blocks
    best = float("inf")
    for i in range(reps):  # the minimum: the least disturbed by other work on the machine
        t0 = time.perf_counter()
        conv(x)
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and best * reps > SLOW_BUDGET_S:
            break  # a full-size layer: a few runs tell the layouts apart well enough
    return best


def choose(seen: dict[torch.nn.Conv2d, ConvShape], reps: int = 15,
           memo: Path | None = None) -> dict[torch.nn.Conv2d, torch.memory_format]:
    """The faster layout per convolution, timed once per distinct shape. NCHW unless
    channels-last wins by more than MARGIN.

    `memo`: a JSON file of earlier choices on this machine. Shapes found there are not timed
    again, so every start traces the same program and the inductor cache hits (on a busy
    machine a close call could otherwise flip from one start to the next, and each flip is a
    cache miss: a full compile)."""
    known = _read_memo(memo)
    by_shape: dict[ConvShape, torch.memory_format] = {}
    chosen: dict[torch.nn.Conv2d, torch.memory_format] = {}
    with torch.inference_mode():
        for conv, shape in seen.items():
            if shape not in by_shape:
                key = _memo_key(shape, conv.weight.dtype)
                if key in known:
                    by_shape[shape] = _FORMATS[known[key]]
                else:
                    nchw = _time_conv(conv, shape, torch.contiguous_format, reps)
                    cl = _time_conv(conv, shape, torch.channels_last, reps)
                    by_shape[shape] = torch.channels_last if cl < nchw * (1 - MARGIN) else torch.contiguous_format
                    known[key] = _NAMES[by_shape[shape]]
            chosen[conv] = by_shape[shape]
    _write_memo(memo, known)
    return chosen


_FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
_NAMES = {fmt: name for name, fmt in _FORMATS.items()}


def default_memo() -> Path:
    """Where this machine's choices are kept: beside the inductor cache (the programs they
    shape live there too), one file per torch version, CPU capability and thread count."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    tag = f"{torch.__version__}-{torch.backends.cpu.get_cpu_capability()}-{torch.get_num_threads()}t"
    return Path(cache_dir()) / f"jadong-conv-layouts-{tag}.json"


def _memo_key(shape: ConvShape, dtype: torch.dtype) -> str:
    return json.dumps([list(shape.input_shape), list(shape.weight_shape), list(shape.stride),
                       shape.padding if isinstance(shape.padding, str) else list(shape.padding),
                       list(shape.dilation), shape.groups, shape.bias, str(dtype)])


def _read_memo(memo: Path | None) -> dict[str, str]:
    if memo is None:
        return {}
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("convolution layouts: ignoring %s (%s); timing them again", memo, exc)
        return {}
    return {k: v for k, v in data.items() if v in _FORMATS} if isinstance(data, dict) else {}


def _write_memo(memo: Path | None, known: dict[str, str]) -> None:
    if memo is None:
        return
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=0, sort_keys=True), encoding="utf-8")
        tmp.replace(memo)  # whole or not at all, even with two shows starting at once
    except OSError as exc:
        log.warning("convolution layouts: could not save %s (%s); they will be timed again", memo, exc)


@contextlib.contextmanager
def applied(chosen: dict[torch.nn.Conv2d, torch.memory_format]) -> Iterator[None]:
    """While inside: each chosen convolution converts its input to its layout first (traced
    into a compiled program as a copy, or nothing when the input already has it)."""

    def hook_for(fmt: torch.memory_format):
        def hook(mod: torch.nn.Conv2d, args: tuple) -> tuple:
            return (args[0].contiguous(memory_format=fmt), *args[1:])

        return hook

    handles = [conv.register_forward_pre_hook(hook_for(fmt)) for conv, fmt in chosen.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def summary(chosen: dict[torch.nn.Conv2d, torch.memory_format]) -> str:
    cl = sum(1 for f in chosen.values() if f == torch.channels_last)
    return f"{cl} of {len(chosen)} convolutions channels-last"
