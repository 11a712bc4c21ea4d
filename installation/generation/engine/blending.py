"""Prompt and seed changes without a cut: embeddings blend by linear interpolation, noise walks
by spherical interpolation (a Gaussian noise tensor keeps its statistics along a slerp, while a
plain lerp between two independent draws would shrink it by up to 1/sqrt(2) midway and grey
the picture out).

Times are passed in (`now`, monotonic seconds), so the blends are exact to test.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

K = TypeVar("K")


def blend_weight(start: float, duration: float, now: float) -> float:
    """0 at `start`, 1 after `duration` seconds (smoothstep: no jolt at either end)."""
    if duration <= 0:
        return 1.0
    x = min(max((now - start) / duration, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def slerp_weights(a: torch.Tensor, b: torch.Tensor) -> Callable[[float], tuple[float, float]]:
    """For two noise tensors, the weights (wa, wb) of slerp at t. The angle is measured once
    per pair (on the CPU copies), so the per-frame cost is one fused multiply-add."""
    af, bf = a.flatten().double(), b.flatten().double()
    cos = float((af @ bf) / (af.norm() * bf.norm()).clamp_min(1e-12))
    theta = math.acos(min(max(cos, -1.0), 1.0))
    sin = math.sin(theta)

    def weights(t: float) -> tuple[float, float]:
        if sin < 1e-6:  # (almost) the same direction: lerp is exact enough
            return 1.0 - t, t
        return math.sin((1.0 - t) * theta) / sin, math.sin(t * theta) / sin

    return weights


class EmbeddingCache(Generic[K]):
    """The last few prompts' encodings: a visitor who repeats a word, or a cue that goes back,
    costs no text-encoder call."""

    def __init__(self, encode: Callable[[K], Any], size: int = 32) -> None:
        self._encode = encode
        self._size = size
        self._items: OrderedDict[K, Any] = OrderedDict()
        self.misses = 0

    def get(self, key: K) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = self._encode(key)
        self._items[key] = value
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return value


@dataclass
class _Blend:
    start: Any
    target: Any
    t0: float
    duration: float


class TensorBlend:
    """A value (a tuple of tensors: embeddings, pooled embeddings) that moves to a new target
    over a set time. Changing target mid-blend starts from where the blend is now."""

    def __init__(self) -> None:
        self._blend: _Blend | None = None
        self._key: Any = None
        self.version = 0  # bumps whenever value() may differ from last time

    @property
    def key(self) -> Any:
        return self._key

    def set(self, key: Any, target: tuple[torch.Tensor, ...], duration: float, now: float) -> None:
        if key == self._key and self._blend is not None:
            return
        start = self.value(now) if self._blend is not None else target
        self._key = key
        self._blend = _Blend(start, target, now, max(duration, 0.0))
        self.version += 1

    def invalidate(self) -> None:
        """The next set() takes its target even for the same key (its tensors changed)."""
        self._key = None

    def blending(self, now: float) -> bool:
        b = self._blend
        return b is not None and b.start is not b.target and now - b.t0 < b.duration

    def value(self, now: float) -> tuple[torch.Tensor, ...]:
        b = self._blend
        if b is None:
            raise RuntimeError("TensorBlend.value() before set()")
        w = blend_weight(b.t0, b.duration, now)
        if w >= 1.0 or b.start is b.target:
            b.start = b.target  # done: later calls skip the arithmetic
            return b.target
        return tuple(None if s is None else torch.lerp(s, e, w) for s, e in zip(b.start, b.target))


class NoiseWalk:
    """The noise behind the picture. A seed change slerps to the new seed's noise over the
    blend time; `drift` (0-1) keeps walking towards the next seeds by itself, so a txt2img
    picture with a fixed prompt moves slowly (drift 1: a new seed every second)."""

    def __init__(self, draw: Callable[[int], torch.Tensor]) -> None:
        self._draw = draw  # seed → noise tensor (CPU, float32); same seed, same tensor
        self._seed: int | None = None
        self._a: torch.Tensor | None = None
        self._b: torch.Tensor | None = None
        self._weights: Callable[[float], tuple[float, float]] | None = None
        self._t0 = 0.0
        self._duration = 0.0
        self._next_seed = 0
        self._phase = 0.0
        self._last_now: float | None = None
        self._drift = 0.0
        self._current: torch.Tensor | None = None
        self.version = 0

    def _start(self, target_seed: int, start: torch.Tensor, now: float, duration: float) -> None:
        self._a = start
        self._b = self._draw(target_seed)
        self._weights = slerp_weights(self._a, self._b)
        self._t0, self._duration = now, duration

    def set_seed(self, seed: int, blend_s: float, now: float) -> None:
        if seed == self._seed:
            return
        first = self._seed is None
        self._seed = seed
        self._next_seed = seed
        if first or blend_s <= 0:
            self._a = self._b = self._draw(seed)
            self._weights = None
        else:
            self._start(seed, self.value(now), now, blend_s)
        self._phase = 0.0
        self.version += 1

    def set_drift(self, drift: float) -> None:
        self._drift = min(max(drift, 0.0), 1.0)

    @property
    def moving(self) -> bool:
        return self._drift > 0 or self._weights is not None

    def value(self, now: float) -> torch.Tensor:
        if self._a is None:
            raise RuntimeError("NoiseWalk.value() before set_seed()")
        dt = 0.0 if self._last_now is None else max(now - self._last_now, 0.0)
        self._last_now = now
        if self._weights is not None and self._duration > 0:  # a seed change blending in
            t = blend_weight(self._t0, self._duration, now)
            if t >= 1.0:
                self._a, self._weights = self._b, None
            else:
                wa, wb = self._weights(t)
                self.version += 1
                return self._a * wa + self._b * wb
        if self._drift > 0:
            self._phase += self._drift * dt
            if self._b is self._a or self._weights is None:
                self._next_seed += 1
                self._b = self._draw(self._next_seed)
                self._weights = slerp_weights(self._a, self._b)
                self._duration = 0.0
            while self._phase >= 1.0:
                self._phase -= 1.0
                self._a = self._b
                self._next_seed += 1
                self._b = self._draw(self._next_seed)
                self._weights = slerp_weights(self._a, self._b)
            wa, wb = self._weights(self._phase)
            self.version += 1
            return self._a * wa + self._b * wb
        return self._a
