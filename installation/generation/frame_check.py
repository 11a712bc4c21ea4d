"""Is a generated frame fit for the screen? The generator thread asks before a frame goes into
the frame slot, so a broken frame is never shown: the display keeps the last good one.

What counts as broken is narrow on purpose. A dark or nearly flat picture is a real picture (a
night prompt, a blackout-ish cue, fog), so brightness and contrast never refuse a frame. Only:

- not an RGB uint8 image at all (wrong type, dtype or shape, empty);
- non-finite values (NaN, inf): a float frame straight from a model whose numbers overflowed;
- an exactly constant frame: every pixel the same colour, max - min == 0 in every channel.
  This is what a NaN latent becomes after the engines' conversion to uint8 (NaN turns into 0:
  imaging.to_uint8 and the streaming engine's decode both map it to black), and what a dead
  model paints; a real scene, however dark, has at least one pixel that differs.

Cheap: a constant frame is first disproved on a strided subsample (any two differing pixels
there settle it, which is the case for almost every real frame); only a frame that looks
constant on the sample is read in full, so a dark picture with a single bright detail passes.
"""

from __future__ import annotations

import numpy as np

# Rows and columns of the subsample: every SAMPLE_STRIDE-th pixel in each direction (a 512 x 512
# frame reads 64 x 64 pixels).
SAMPLE_STRIDE = 8


def frame_problem(frame: object, constant_ok: bool = False) -> str:
    """'' when `frame` may be shown, else why not (one line, for the event log). `constant_ok`:
    the preview, whose restyling of a flat camera picture (a white wall, a test card) is flat
    too; a diffusion model's frame is never exactly one colour unless something broke."""
    if not isinstance(frame, np.ndarray):
        return f"not an image: got {type(frame).__name__}"
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        return f"not an RGB image: shape {frame.shape}"
    if frame.dtype.kind == "f":
        finite = np.isfinite(frame)
        if not finite.all():
            bad = int(frame.size - np.count_nonzero(finite))
            return f"non-finite values: {bad} of {frame.size} are NaN or infinite"
    if frame.dtype != np.uint8:  # the screen takes uint8 RGB (core/interfaces.py's Generator)
        return f"not a uint8 image: dtype {frame.dtype}"
    if not constant_ok and _is_constant(frame):
        colour = tuple(frame[0, 0].tolist())
        return f"constant frame: every pixel is {colour}"
    return ""


def _is_constant(frame: np.ndarray) -> bool:
    first = frame[0, 0]
    sample = frame[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
    if (sample != first).any():
        return False  # the usual case: decided on a 1/64 sample
    return not (frame != first).any()


__all__ = ["SAMPLE_STRIDE", "frame_problem"]
