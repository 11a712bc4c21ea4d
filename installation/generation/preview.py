"""The preview generator: a fast CPU "painting" of the camera image, coloured by the prompt.

It runs when no diffusion model is available (not downloaded yet, failed to load, still
loading), so the screen is never black or frozen and still answers the visitor's words. It is
deliberately stylised (posterised washes, ink lines, paper grain) so nobody mistakes it for
the real thing, and the display shows its label saying why it runs and how to fix that.
No torch here: numpy and OpenCV, a few milliseconds a frame at 512×512.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import re
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from installation.core.messages import GenerationParams, Prompt, StreamRequest

from .imaging import check_rgb_uint8, fit_image

RGB = tuple[int, int, int]


def _hex(*colours: str) -> tuple[RGB, ...]:
    return tuple((int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) for c in colours)


# Five colours each, darkest first: the image's brightness is mapped onto them.
PALETTES: dict[str, tuple[RGB, ...]] = {
    "red": _hex("2a0508", "6e0f17", "b3202b", "e2604f", "f6c9b8"),
    "blue": _hex("07132e", "143a7a", "2f6fc0", "7fb0e6", "dcecfa"),
    "gold": _hex("2b1a05", "6b4a0e", "b7871f", "e8c35a", "fbf0c8"),
    "green": _hex("061a0c", "175027", "3a8c45", "8cc46f", "e2f2cf"),
    "snow": _hex("3c4654", "7d8999", "b7c2cf", "e1e7ee", "fbfcfe"),
    "night": _hex("020309", "0b1230", "1d2c5e", "4a5d96", "a9b6dc"),
    "fire": _hex("1a0300", "6b1300", "d13f00", "ff9a1f", "ffe9a8"),
    "ocean": _hex("021a26", "054a63", "0b8197", "5cc3c2", "d5f3ee"),
    "forest": _hex("0b1408", "24361a", "4b6a2e", "8fa461", "dfe3c0"),
    "ink": _hex("0d0d10", "3a3a40", "7c7b7e", "c4c0b8", "f3efe6"),
    "purple": _hex("14061f", "3d1460", "7438a6", "b585d6", "efe0f8"),
    "pink": _hex("2e0a1a", "7a2450", "c95b8f", "f2a7c7", "fde8f1"),
    "dawn": _hex("1f1530", "6a3f63", "d9787a", "f7b98b", "fff0d6"),
    "neon": _hex("05010f", "3b0a7a", "ff1f8f", "17f1ff", "f6ff8a"),
    "silver": _hex("16181c", "44484f", "858b94", "c3c8cf", "f4f6f8"),
    "desert": _hex("2a1607", "7a4a1f", "c4864a", "e8bf85", "fbeed5"),
    "autumn": _hex("1f0a03", "6a240b", "b5521a", "e09a3c", "f7dfa6"),
}

ALIASES: dict[str, str] = {
    "red": "red", "crimson": "red", "scarlet": "red", "blood": "red", "ruby": "red",
    "blue": "blue", "azure": "blue", "sapphire": "blue", "sky": "blue", "indigo": "blue",
    "gold": "gold", "golden": "gold", "yellow": "gold", "sun": "gold", "sunlight": "gold", "amber": "gold",
    "green": "green", "emerald": "green", "jade": "green", "spring": "green", "grass": "green",
    "garden": "green", "meadow": "green",
    "snow": "snow", "white": "snow", "winter": "snow", "ice": "snow", "frozen": "snow", "frost": "snow",
    "cloud": "snow", "clouds": "snow",
    "night": "night", "dark": "night", "darkness": "night", "black": "night", "midnight": "night",
    "moon": "night", "moonlight": "night", "stars": "night", "star": "night",
    "fire": "fire", "flame": "fire", "flames": "fire", "burning": "fire", "orange": "fire",
    "sunset": "fire", "lava": "fire", "ember": "fire",
    "ocean": "ocean", "sea": "ocean", "water": "ocean", "wave": "ocean", "waves": "ocean",
    "river": "ocean", "lake": "ocean", "rain": "ocean", "teal": "ocean", "cyan": "ocean",
    "forest": "forest", "tree": "forest", "trees": "forest", "woods": "forest", "leaf": "forest",
    "leaves": "forest", "pine": "forest", "moss": "forest", "jungle": "forest",
    "ink": "ink", "wash": "ink", "charcoal": "ink", "pencil": "ink", "sketch": "ink", "grey": "ink",
    "gray": "ink", "monochrome": "ink", "calligraphy": "ink",
    "purple": "purple", "violet": "purple", "lavender": "purple", "magenta": "purple",
    "pink": "pink", "rose": "pink", "roses": "pink", "blossom": "pink", "cherry": "pink", "flower": "pink",
    "flowers": "pink",
    "dawn": "dawn", "sunrise": "dawn", "morning": "dawn", "dusk": "dawn", "twilight": "dawn",
    "neon": "neon", "cyberpunk": "neon", "electric": "neon", "disco": "neon",
    "silver": "silver", "metal": "silver", "steel": "silver", "chrome": "silver", "mist": "silver",
    "fog": "silver",
    "desert": "desert", "sand": "desert", "dune": "desert", "clay": "desert", "brown": "desert",
    "autumn": "autumn", "fall": "autumn", "copper": "autumn", "rust": "autumn", "bronze": "autumn",
}

# Words that carry no colour or subject; they neither pick nor hash a palette.
STOPWORDS = frozenset(
    "a an the of and or in on at to for with from by into over under is are was be it its this "
    "that i you he she we they my your our me like as very so just some soft light painting style "
    "art image picture photo".split()
)

# Words that ask for a drawn, linear look: stronger ink lines, visible paper.
LINE_WORDS = frozenset("ink wash sketch pencil charcoal drawing calligraphy woodcut print etching".split())

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _digest(text: str) -> bytes:
    # hashlib, not hash(): Python salts str hashes per process, and a show must look the same
    # after a restart.
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def hashed_palette(word: str) -> tuple[RGB, ...]:
    """A palette for a word we have no colour for: a hue from its hash, dark to light."""
    d = _digest(word)
    hue = d[0] / 256.0
    sat = 0.35 + 0.4 * d[1] / 255.0
    spread = (d[2] / 255.0 - 0.5) * 0.16  # analogous hues drift a little towards the light end
    colours = []
    for i, lightness in enumerate((0.08, 0.25, 0.45, 0.68, 0.92)):
        r, g, b = colorsys.hls_to_rgb((hue + spread * i) % 1.0, lightness, sat)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours)


@dataclass(frozen=True)
class Style:
    """Everything a prompt decides about the look, computed once per prompt."""

    lut: np.ndarray  # (256, 3) uint8: brightness → colour
    ink: RGB  # colour of the lines
    levels: int  # posterisation levels
    line_weight: float  # 0..1 how dark the ink lines are
    grain: float  # paper grain depth, 0..1
    palettes: tuple[str, ...]  # names (or "#word") of the palettes used, for logs and tests


def _gradient(colours: tuple[RGB, ...]) -> np.ndarray:
    stops = np.linspace(0, 255, len(colours))
    arr = np.asarray(colours, dtype=np.float32)
    x = np.arange(256, dtype=np.float32)
    return np.stack([np.interp(x, stops, arr[:, c]) for c in range(3)], axis=1)


@functools.lru_cache(maxsize=64)
def style_for(text: str) -> Style:
    words = [w.lower() for w in _WORD.findall(text)]
    known = [ALIASES[w] for w in words if w in ALIASES]
    unknown = [w for w in words if w not in ALIASES and w not in STOPWORDS]
    names: list[str] = list(dict.fromkeys(known))  # unique, first mention first
    if not names:
        key = " ".join(unknown) if unknown else text.strip().lower()
        names = [f"#{key}"]
    palettes = [PALETTES[n] if n in PALETTES else hashed_palette(n[1:]) for n in names[:2]]
    lut = _gradient(palettes[0])
    if len(palettes) > 1:
        # A second colour word tints the highlights, so "red snow" differs from "snow".
        ramp = np.linspace(0.0, 0.55, 256, dtype=np.float32)[:, None] ** 1.5
        lut = lut * (1 - ramp) + _gradient(palettes[1]) * ramp
    ink = palettes[-1][0]

    # The whole prompt, unknown words included, varies the hand: any change of words shows.
    d = _digest(" ".join(words) or text)
    linear = any(w in LINE_WORDS for w in words)
    return Style(
        lut=np.clip(lut + 0.5, 0, 255).astype(np.uint8),
        ink=ink,
        levels=4 + d[3] % 4,
        line_weight=(0.85 if linear else 0.55) + 0.1 * d[4] / 255.0,
        grain=(0.22 if linear else 0.12) + 0.06 * d[5] / 255.0,
        palettes=tuple(names[:2]),
    )


class PreviewGenerator:
    """Generator protocol (core/interfaces.py). `generate` is deterministic for the same prompt,
    params, image and clock time; without an image it paints a noise field that drifts with
    the clock (inject `clock` to pin it). The `reason` argument is its first label: why it
    paints instead of the model, and the fix."""

    name = "preview"
    model = ""
    device = "cpu"

    def __init__(
        self,
        width: int,
        height: int,
        reason: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if width < 8 or height < 8:
            raise ValueError(f"preview size: expected at least 8×8 pixels, got {width}×{height}")
        self.width = width
        self.height = height
        self.label = reason
        self.reason = ""  # why the show runs it, set by the choice (generation/choice.py)
        self.progress_callback: Callable[[str], None] | None = None  # nothing to load, nothing to report
        self._clock = clock
        self._drifting = False  # the last frame was painted on the drifting canvas (no camera image)
        self._grain: dict[int, np.ndarray] = {}
        self._noise: dict[int, np.ndarray] = {}
        self._ink: dict[RGB, np.ndarray] = {}

    @property
    def animating(self) -> bool:
        """True after a frame painted without a camera image: its canvas drifts with the clock,
        so the same inputs paint a new frame a moment later."""
        return self._drifting

    def load(self) -> None:
        """Nothing to load: the preview must work from the first frame."""

    # --- textures, made once per seed --------------------------------------------------
    def _grain_for(self, seed: int) -> np.ndarray:
        """Paper: fine noise plus faint horizontal fibres, as uint8 RGB around 128."""
        g = self._grain.get(seed)
        if g is None:
            rng = np.random.default_rng(seed ^ 0x9A9E2)
            shape = (self.height, self.width)
            fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 0.7)
            fibres = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 0.6, sigmaY=3.0)
            f = fine + 1.5 * fibres
            f = np.clip(f / (np.abs(f).max() + 1e-6), -1, 1)
            g1 = np.clip(128.0 + 127.0 * f, 0, 255).astype(np.uint8)
            g = cv2.merge([g1, g1, g1])
            _keep(self._grain, seed, g)  # a few seeds: several streams may each have their own
        return g

    def _ink_for(self, ink: RGB) -> np.ndarray:
        img = self._ink.get(ink)
        if img is None:
            img = np.empty((self.height, self.width, 3), np.uint8)
            img[:] = ink
            _keep(self._ink, ink, img)
        return img

    def _noise_for(self, seed: int) -> np.ndarray:
        """A soft RGB cloud field 1.5× the frame, so a drifting window can move within it."""
        n = self._noise.get(seed)
        if n is None:
            rng = np.random.default_rng(seed)
            big_w, big_h = math.ceil(self.width * 1.5), math.ceil(self.height * 1.5)
            field = np.zeros((big_h, big_w, 3), np.float32)
            for cells, weight in ((3, 0.55), (7, 0.3), (17, 0.15)):
                small = rng.random((cells, cells, 3)).astype(np.float32)
                field += weight * cv2.resize(small, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
            field -= field.min()
            field *= 255.0 / max(float(field.max()), 1e-6)
            n = field.astype(np.uint8)
            _keep(self._noise, seed, n)
        return n

    def _drifting_noise(self, seed: int) -> np.ndarray:
        field = self._noise_for(seed)
        t = self._clock()
        # A slow Lissajous path (minutes per loop), so the image breathes rather than scrolls.
        span_x = field.shape[1] - self.width
        span_y = field.shape[0] - self.height
        x = int((0.5 + 0.5 * math.sin(t * 0.05)) * span_x)
        y = int((0.5 + 0.5 * math.sin(t * 0.037 + 1.0)) * span_y)
        return np.ascontiguousarray(field[y : y + self.height, x : x + self.width])

    # --- the painting ------------------------------------------------------------------
    def set_lora_scale(self, scale: float) -> None:
        """The preview paints no LoRA."""

    def release(self) -> None:
        """No model to let go of: the preview holds only its small textures."""

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray:
        self._drifting = image is None
        return self._paint(prompt, params, image, "camera image")

    def generate_many(self, requests: Sequence[StreamRequest]) -> list[np.ndarray]:
        """Each stream painted in turn (a few milliseconds each): the preview keeps no state
        per stream beyond its textures, which are cached per seed and prompt."""
        streams = [r.stream for r in requests]
        if len(set(streams)) != len(streams):
            raise ValueError(f"streams {streams}: each stream at most once per call")
        self._drifting = any(r.image is None for r in requests)
        label = "camera image" if len(requests) == 1 else "stream {}: camera image"
        return [self._paint(r.prompt, r.params, r.image, label.format(r.stream)) for r in requests]

    def _paint(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None, label: str) -> np.ndarray:
        if image is None:
            base = self._drifting_noise(int(params.seed))
        else:
            base = fit_image(check_rgb_uint8(image, label), self.width, self.height)
        style = style_for(prompt.text)
        strength = min(max(float(params.strength), 0.0), 1.0)
        if strength == 0.0 and image is not None:
            return np.ascontiguousarray(base).copy()

        # Everything below stays in uint8 OpenCV calls: numpy float passes over a 512×512×3
        # frame cost ~3 ms each, and the preview must leave the CPU to the rest of the show.
        w, h = self.width, self.height
        gray = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)
        # Washes: blur at quarter size (cheap), then posterise into flat areas of colour.
        small = cv2.resize(gray, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
        wash = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.2), (w, h), interpolation=cv2.INTER_LINEAR)
        # Posterised wash and a touch of the fine detail, then brightness → the prompt's colours.
        tone = cv2.addWeighted(cv2.LUT(wash, _poster_lut(style.levels)), 0.8, gray, 0.2, 0)
        painted = cv2.LUT(cv2.merge([tone, tone, tone]), style.lut.reshape(256, 1, 3))

        # Ink lines where the image has edges, found at half size: cheaper, and the upscale
        # softens them into brush strokes.
        half = cv2.resize(gray, (max(w // 2, 1), max(h // 2, 1)), interpolation=cv2.INTER_AREA)
        edges = cv2.Canny(cv2.GaussianBlur(half, (3, 3), 0), 40, 110)
        lines = cv2.resize(edges, (w, h), interpolation=cv2.INTER_LINEAR)
        ink_w = lines.astype(np.float32) * (style.line_weight / 255.0)
        painted = cv2.blendLinear(painted, self._ink_for(style.ink), 1.0 - ink_w, ink_w)

        # Paper grain: lighter and darker fibres across the whole sheet (grain is 128-centred).
        painted = cv2.addWeighted(painted, 1.0, self._grain_for(int(params.seed)), style.grain, -128.0 * style.grain)

        # Without a camera there is no original to keep: the noise is only a canvas.
        if strength < 1.0 and image is not None:
            painted = cv2.addWeighted(painted, strength, base, 1.0 - strength, 0)
        return painted


def _keep(cache: dict, key: Hashable, value: np.ndarray, size: int = 4) -> None:
    """Keeps `value` in a small texture cache, dropping the oldest beyond `size`."""
    cache[key] = value
    while len(cache) > size:
        del cache[next(iter(cache))]


@functools.lru_cache(maxsize=8)
def _poster_lut(levels: int) -> np.ndarray:
    step = 255.0 / (levels - 1)
    return np.clip(np.round(np.arange(256) / step) * step, 0, 255).astype(np.uint8)
