"""The dominant colours of a camera frame as plain words a prompt can use ("blue", "orange"),
and those words in the caption's language.

Each pixel of a 64×36 thumbnail is named by simple rules on hue, saturation and value (HSV):
the hue circle first, then the exceptions a viewer makes to it: brown (dark or dull orange and
yellow), beige (light, soft orange and yellow), pink (light red, magenta), purple (dark magenta),
teal (dark cyan), and the colourless black, white and grey. The names are counted and the largest
shares win; a share under MIN_SHARE is a detail, not a colour of the scene. 0.2-0.4 ms a frame
(640×360 in, thumbnail included)."""

from __future__ import annotations

import cv2
import numpy as np

from installation.core.colour_names import COLOUR_NAMES, LANGUAGES, colour_name

from .thumbnail import thumbnail

__all__ = ["COLOURS", "COLOUR_NAMES", "LANGUAGES", "colour_name", "dominant_colours"]

# The names, in the order of the table below (index = the code a pixel gets).
COLOURS = ("black", "white", "grey", "brown", "beige", "pink", "purple", "red", "orange", "yellow", "green",
           "teal", "cyan", "blue")
_CODE = {name: i for i, name in enumerate(COLOURS)}

# A colour must cover this share of the picture to be named: a red badge on a grey coat is not
# "red" in the scene's words. The most dominant colour is always named, whatever its share.
MIN_SHARE = 0.08

# Colourless pixels. Below BLACK_VALUE a pixel reads black whatever its hue (HSV hue is noise
# there). Below GREY_CHROMA (max - min channel, 0-1) it reads white, grey or black by value:
# chroma rather than HSV saturation, because saturation explodes for dark, nearly grey pixels.
BLACK_VALUE = 0.16
GREY_CHROMA = 0.10
WHITE_VALUE = 0.80  # colourless and at least this light: white
GREY_BLACK_VALUE = 0.25  # colourless and darker than this: black

# Brown is dark orange/yellow: hue in this range and value under BROWN_VALUE, or a middling
# value that is not vivid (wood, a tabby cat: (194, 118, 71) is brown, not orange). Orange needs
# both light and saturation (a NASA suit, (224, 100, 62), is orange).
BROWN_HUES = (8.0, 50.0)
BROWN_VALUE = 0.55
# A dark yellow (olive, (0, 128, 128)) reads as an olive green, not yellow.
OLIVE_HUES = (BROWN_HUES[1], 68.0)
ORANGE_VALUE = 0.80
ORANGE_SATURATION = 0.85  # a vivid orange is orange even when a little dark

# Beige: light and soft orange/yellow (sand, cream, pale skin, a warm wall).
BEIGE_HUES = (15.0, 60.0)
BEIGE_SATURATION = 0.45
BEIGE_VALUE = 0.75

# Pink: magenta-to-red hues; and light, soft reds (a pale red is "pink" in ordinary speech). A
# soft red that is not light is a dusty brown, not red.
PINK_HUES = (290.0, 345.0)
PINK_SOFT_SATURATION = 0.5
PINK_SOFT_VALUE = 0.6
PURPLE_DARK_VALUE = 0.6  # a dark magenta reads purple rather than pink

# Teal and cyan share a hue; cyan is the light, vivid one.
CYAN_VALUE = 0.7

# The hue circle (degrees, upper bounds), for everything not named above.
HUES = ((10.0, "red"), (40.0, "orange"), (68.0, "yellow"), (160.0, "green"), (200.0, "cyan"),
        (260.0, "blue"), (PINK_HUES[0], "purple"), (PINK_HUES[1], "pink"), (360.0, "red"))


def _hue_codes(hue: np.ndarray) -> np.ndarray:
    bounds = np.array([b for b, _ in HUES], np.float32)
    codes = np.array([_CODE[n] for _, n in HUES], np.intp)
    return codes[np.minimum(np.searchsorted(bounds, hue, side="right"), len(bounds) - 1)]


def colour_codes(image_bgr: np.ndarray) -> np.ndarray:
    """One code (an index into COLOURS) per pixel of `image_bgr`, uint8 BGR (H, W, 3)."""
    pixels = image_bgr.reshape(-1, 1, 3).astype(np.float32) / 255.0
    # float input gives hue in degrees (0-360) and saturation/value in 0-1, without uint8's
    # halved hue steps.
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    chroma = sat * val
    codes = _hue_codes(hue)
    # Later rules override earlier ones, so they run from the most general to the most certain.
    brownish = (hue >= BROWN_HUES[0]) & (hue < BROWN_HUES[1])
    codes[brownish & ((val < BROWN_VALUE) | ((val < ORANGE_VALUE) & (sat < ORANGE_SATURATION)))] = _CODE["brown"]
    olive = (hue >= OLIVE_HUES[0]) & (hue < OLIVE_HUES[1])
    codes[olive & (val < BROWN_VALUE)] = _CODE["green"]
    beigeish = (hue >= BEIGE_HUES[0]) & (hue < BEIGE_HUES[1])
    codes[beigeish & (sat < BEIGE_SATURATION) & (val >= BEIGE_VALUE)] = _CODE["beige"]
    reddish = (hue >= PINK_HUES[1]) | (hue < HUES[0][0])
    soft_red = reddish & (sat < PINK_SOFT_SATURATION)
    codes[soft_red] = np.where(val[soft_red] >= PINK_SOFT_VALUE, _CODE["pink"], _CODE["brown"])
    magenta = (hue >= PINK_HUES[0]) & (hue < PINK_HUES[1])
    codes[magenta & (val < PURPLE_DARK_VALUE)] = _CODE["purple"]
    cyanish = codes == _CODE["cyan"]
    codes[cyanish & (val < CYAN_VALUE)] = _CODE["teal"]
    grey = chroma < GREY_CHROMA
    codes[grey] = np.where(val[grey] >= WHITE_VALUE, _CODE["white"],
                           np.where(val[grey] < GREY_BLACK_VALUE, _CODE["black"], _CODE["grey"]))
    codes[val < BLACK_VALUE] = _CODE["black"]
    return codes.reshape(image_bgr.shape[:2])


def colour_shares(image_bgr: np.ndarray) -> dict[str, float]:
    """Each colour's share of the frame (0-1), largest first; colours absent are left out."""
    codes = colour_codes(thumbnail(image_bgr))
    counts = np.bincount(codes.ravel(), minlength=len(COLOURS))
    total = float(counts.sum())
    order = np.argsort(-counts, kind="stable")
    return {COLOURS[i]: float(counts[i]) / total for i in order if counts[i] > 0}


def dominant_colours(image_bgr: np.ndarray, n: int = 2) -> tuple[str, ...]:
    """The `n` (or fewer) colours that cover most of the frame, most dominant first, in English.
    A colour under MIN_SHARE is left out, except the most dominant one (a frame always has a
    colour)."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 colour, got {n}")
    shares = colour_shares(image_bgr)
    names = [name for i, (name, share) in enumerate(shares.items()) if i == 0 or share >= MIN_SHARE]
    return tuple(names[:n])
