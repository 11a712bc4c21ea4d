"""Text on screen: the bundled font, line wrapping, the caption band and small text boxes
(label, HUD), and the caption's fade timing.

Everything here renders to pygame surfaces once per change of text or screen size; the
display loop only blits the cached surfaces, so text costs nothing per frame.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygame

from installation.show import ASSETS_DIR

log = logging.getLogger(__name__)

FONT_DIR = ASSETS_DIR / "fonts"
# Bold reads better from across a room, and NanumGothic covers Hangul as well as Latin.
DEFAULT_FONT = FONT_DIR / "NanumGothicBold.ttf"

# Caption timing: a quick fade in, `caption_seconds` fully shown, then a gentle fade out.
CAPTION_FADE_IN_S = 0.25
CAPTION_FADE_OUT_S = 1.0
CAPTION_MAX_LINES = 3

# Sizes are designed at 720 lines and scaled with the screen, so one show file looks the same
# on a 720p monitor and a 4K projector.
REFERENCE_HEIGHT = 720

Color = tuple[int, int, int]


def screen_scale(size: tuple[int, int]) -> float:
    return max(size[1], 1) / REFERENCE_HEIGHT


class FontBook:
    """Fonts by pixel size from one file, loaded on first use. Falls back to pygame's
    built-in font (Latin only) with a warning when the bundled file is missing, so a broken
    install still shows something."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = DEFAULT_FONT if path is None else Path(path)
        self._fonts: dict[int, pygame.font.Font] = {}
        self._warned_missing: set[str] = set()
        self.fallback = False
        if not self.path.is_file():
            log.warning("font %s is missing; using pygame's built-in font, which has no Hangul "
                        "(reinstall the project's assets/fonts/)", self.path)
            self.fallback = True

    def get(self, size: int) -> pygame.font.Font:
        size = max(6, int(round(size)))
        font = self._fonts.get(size)
        if font is None:
            if not pygame.font.get_init():
                pygame.font.init()
            if not self.fallback:
                try:
                    font = pygame.font.Font(str(self.path), size)
                except (OSError, pygame.error) as exc:
                    log.warning("font %s cannot be loaded (%s); using pygame's built-in font, "
                                "which has no Hangul", self.path, exc)
                    self.fallback = True
            if font is None:
                font = pygame.font.Font(None, size)
            self._fonts[size] = font
        return font


    def warn_missing(self, font: pygame.font.Font, text: str) -> str:
        """Log characters the font cannot draw, once each, so a visitor speaking a language
        the font lacks is noticed without filling the log. Returns the missing ones."""
        missing = missing_glyphs(font, text)
        new = "".join(c for c in missing if c not in self._warned_missing)
        if new:
            self._warned_missing.update(new)
            log.warning("font %s has no glyphs for %r; they show as boxes", self.path.name, new)
        return missing


def missing_glyphs(font: pygame.font.Font, text: str) -> str:
    """The characters of `text` the font has no glyph for (they would show as boxes)."""
    chars = sorted({c for c in text if not c.isspace()})
    if not chars:
        return ""
    metrics = font.metrics("".join(chars))
    return "".join(c for c, m in zip(chars, metrics) if m is None)


_TOKEN = re.compile(r"\S+")


def wrap_text(text: str, font: pygame.font.Font, max_width: int) -> list[str]:
    """Greedy word wrap to `max_width` pixels. A word wider than a line (a long URL, or
    Chinese/Japanese written without spaces) is broken between characters."""
    max_width = max(int(max_width), 1)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        words = _TOKEN.findall(paragraph)
        if not words:
            continue
        line = ""
        for word in words:
            trial = f"{line} {word}" if line else word
            if font.size(trial)[0] <= max_width:
                line = trial
                continue
            if line:
                lines.append(line)
                line = ""
            if font.size(word)[0] <= max_width:
                line = word
                continue
            for ch in word:  # break an overlong word between characters
                if line and font.size(line + ch)[0] > max_width:
                    lines.append(line)
                    line = ""
                line += ch
        if line:
            lines.append(line)
    return lines


def _shadowed(font: pygame.font.Font, text: str, color: Color, offset: int) -> pygame.Surface:
    """Text with a soft drop shadow, so it stays legible over any image."""
    fg = font.render(text, True, color)
    shadow = font.render(text, True, (0, 0, 0))
    shadow.set_alpha(170)
    out = pygame.Surface((fg.get_width() + offset, fg.get_height() + offset), pygame.SRCALPHA)
    out.blit(shadow, (offset, offset))
    out.blit(fg, (0, 0))
    return out


def render_caption_band(text: str, fonts: FontBook, size: tuple[int, int], caption_size: int,
                        max_lines: int = CAPTION_MAX_LINES) -> pygame.Surface | None:
    """The visitor's words, wrapped and centred over a dark band that fades upward into the
    image. Returns a full-width per-pixel-alpha surface to blit at the bottom of the screen,
    or None for empty text. Only the newest `max_lines` lines are kept."""
    text = " ".join(text.split())
    if not text:
        return None
    width, height = size
    scale = screen_scale(size)
    font = fonts.get(caption_size * scale)
    fonts.warn_missing(font, text)
    margin = int(width * 0.08)
    lines = wrap_text(text, font, width - 2 * margin)
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
        lines[0] = "… " + lines[0]
    line_h = font.get_linesize()
    pad = int(line_h * 0.6)
    fade_h = int(line_h * 1.2)  # the band's upper part ramps from clear to dark
    band_h = min(height, fade_h + pad * 2 + line_h * len(lines))
    band = pygame.Surface((width, band_h), pygame.SRCALPHA)
    # Alpha ramp, built with numpy: never a per-pixel Python loop.
    ramp = np.clip(np.arange(band_h, dtype=np.float32) / max(fade_h, 1), 0.0, 1.0)
    alpha = (ramp**1.5 * 165).astype(np.uint8)
    band.fill((0, 0, 0, 0))
    band_alpha = pygame.surfarray.pixels_alpha(band)
    band_alpha[:, :] = alpha[np.newaxis, :]
    del band_alpha  # unlock the surface
    shadow = max(1, int(round(2 * scale)))
    y = band_h - pad - line_h * len(lines)
    for line in lines:
        glyphs = _shadowed(font, line, (255, 255, 255), shadow)
        band.blit(glyphs, ((width - glyphs.get_width()) // 2, y))
        y += line_h
    return band


def render_text_box(lines: list[str], font: pygame.font.Font, max_width: int,
                    color: Color = (235, 235, 235), align: str = "left",
                    background_alpha: int = 150) -> pygame.Surface | None:
    """Small text on a translucent dark box (the label, the HUD). None for no text."""
    wrapped: list[str] = []
    for line in lines:
        wrapped.extend(wrap_text(line, font, max_width) or [""])
    if not any(wrapped):
        return None
    rendered = [font.render(line, True, color) for line in wrapped]
    pad = max(4, font.get_linesize() // 3)
    width = max(s.get_width() for s in rendered) + 2 * pad
    height = font.get_linesize() * len(rendered) + 2 * pad
    box = pygame.Surface((width, height), pygame.SRCALPHA)
    box.fill((0, 0, 0, background_alpha))
    y = pad
    for s in rendered:
        x = pad if align == "left" else width - pad - s.get_width()
        box.blit(s, (x, y))
        y += font.get_linesize()
    return box


@dataclass
class CaptionTiming:
    """When the caption shows and how strongly: fade in, hold `hold_s`, fade out."""

    hold_s: float
    fade_in_s: float = CAPTION_FADE_IN_S
    fade_out_s: float = CAPTION_FADE_OUT_S

    def alpha(self, since_set: float) -> int:
        """Opacity 0-255 at `since_set` seconds after the caption was set."""
        if since_set < 0:
            return 0
        if since_set < self.fade_in_s:
            return int(255 * since_set / self.fade_in_s)
        out = since_set - self.hold_s
        if out <= 0:
            return 255
        if out >= self.fade_out_s:
            return 0
        return int(255 * (1.0 - out / self.fade_out_s))

    def done(self, since_set: float) -> bool:
        return since_set >= self.hold_s + self.fade_out_s
