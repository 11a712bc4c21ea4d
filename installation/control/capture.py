"""Captures: the frame on screen saved as a PNG beside a JSON of the words and settings that
made it, so a picture kept from a show can always be traced back."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from installation.core.messages import GeneratedFrame


class CaptureError(OSError):
    """The capture could not be written; the text names the file and the reason."""


def save_capture(frame: GeneratedFrame, folder: Path, *, show: str, cue: str) -> Path:
    """Write `frame` as `folder/STAMP.png` and its provenance as `folder/STAMP.json`; returns
    the PNG's path. Either both files are written or neither is."""
    import cv2  # only when asked: keeps the control room light

    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    path = folder / f"{stamp}.png"
    image = np.ascontiguousarray(frame.image[:, :, ::-1])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise OSError("the image encoder refused it")
    except (OSError, cv2.error) as exc:  # a full or read-only disk: say so, lose nothing else
        raise CaptureError(f"could not write {path}: {exc}") from None
    meta = {
        "image": path.name,
        "prompt": frame.prompt.text,
        "negative": frame.prompt.negative,
        "source": frame.prompt.source,
        "caption": frame.prompt.caption,
        "approved_by": frame.prompt.approved_by,  # [curation]: a person's decision, "" when none was needed
        "generator": frame.generator,
        "model": frame.model,
        "params": {k: v for k, v in asdict(frame.params).items() if k != "t"},
        "show": show,
        "cue": cue,
    }
    try:
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    except OSError as exc:
        path.unlink(missing_ok=True)  # an image without its words would break traceability
        raise CaptureError(f"could not write {path.with_suffix('.json')}: {exc}") from None
    return path
