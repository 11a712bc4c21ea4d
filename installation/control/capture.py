"""Captures: the frame on screen kept as a PNG (and, if the show asks, a short clip) beside a
JSON sidecar of the words, settings and choices that made it, signed with content credentials,
so a picture kept from a show can always be traced back (and anyone can check it was not
changed since).

What fires one: a performer (`/jadong/capture` over OSC or from the operator's page), the
keyboard (`p` in the window), a cue with `capture = true` (once the cue's picture is on
screen), or every Nth new prompt to reach the screen ([capture] every_n_prompts). What it
keeps: [capture] (privacy, clip, quota) and [provenance] (artist, signing certificate). The
files are written off the main thread by control/archive.py.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from installation import __version__
from installation.core.events import EventHook, emit
from installation.core.licences import model_licence
from installation.core.messages import GeneratedFrame
from installation.core.visitor_words import SHOWS_OWN_SOURCES
from installation.show import Show, resolve_path

from .archive import Archive, CaptureError, CaptureJob, SignFn
from .credentials import DEFAULT_DIR, Credentials, load_credentials, own_credentials

log = logging.getLogger(__name__)

__all__ = ["CaptureError", "Captures", "Trigger", "describe"]

# Prompts whose words are the show's own (the artist's), SHOWS_OWN_SOURCES, are kept even when
# the visitors' are not; the event log draws the same line (core/visitor_words.py). A speech
# prompt holds the visitor's words; an OSC prompt may too (/jadong/prompt/append adds to them),
# so a show that keeps no words keeps neither.
WITHHELD = "(withheld: this show keeps no visitor's words, [capture] keep_words = false)"
ARM_TIMEOUT_S = 30.0  # a cue's capture waits this long for its picture, then takes what is on screen
MAX_SETTLE_S = 10.0
MAX_ARMED = 8
CAPTURE_KEY = "p"


@dataclass(frozen=True)
class Trigger:
    """What fired a capture (`kind`: osc, web, key, cue, every_n_prompts, local) and who
    (`by`: "osc 10.0.0.5:53000", "keyboard", "clock", "visitor" ...)."""

    kind: str
    by: str


@dataclass
class _Armed:
    """A capture waiting for its picture: a frame made from these settings or later."""

    trigger: Trigger
    prompt_t: float
    params_t: float
    armed_at: float
    cue: str
    seen_at: float | None = None


def _iso_now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def describe(frame: GeneratedFrame, show: Show, trigger: Trigger, cue: str = "", style: str = "",
             stem: str = "") -> dict[str, Any]:
    """The sidecar's fields for `frame` (and the content credentials' own assertion): the
    visitor's words only where [capture] keep_words allows."""
    prompt = frame.prompt
    keep = show.capture.keep_words or prompt.source in SHOWS_OWN_SOURCES
    params = {k: v for k, v in asdict(frame.params).items() if k != "t"}
    gen = show.generator
    record: dict[str, Any] = {
        "image": f"{stem}.png" if stem else "",
        "time": _iso_now(),
        "show": show.show.name,
        "show_title": show.show.title,
        "artist": show.provenance.artist,
        "cue": cue,
        "style": style,
        "trigger": trigger.kind,
        "fired_by": trigger.by,
        "prompt": prompt.text if keep else WITHHELD,
        "negative": prompt.negative,
        "source": prompt.source,
        "approved_by": prompt.approved_by,  # [curation]: a person's decision, "" when none was needed
        "seed": frame.params.seed,
        "generator": frame.generator,
        "model": frame.model,
        "model_licence": show.provenance.model_licence or model_licence(frame.model),
        "lora": str(params.get("lora", gen.lora) or ""),
        # A cue's LoRA weight where one was set, else the show's.
        "lora_scale": (float(params["lora_scale"] if params.get("lora_scale") is not None else gen.lora_scale)
                       if params.get("lora", gen.lora) else None),
        "params": params,
        "software": f"Jadong {__version__}",
        "words_kept": keep,
    }
    if keep:
        record["caption"] = prompt.caption  # the visitor's words in their own language
    return record


def _signer_factory(show: Show, credentials_dir: Path, on_event: EventHook | None) -> Callable[[], SignFn]:
    """What the archive calls once, on its writer thread, to get its signer: the show's
    certificate and key, or Jadong's own (made on first use, and said so)."""
    cfg = show.provenance

    def make() -> SignFn:
        from .provenance import Signer

        credentials: Credentials
        if cfg.certificate.strip():
            credentials = load_credentials(resolve_path(cfg.certificate), resolve_path(cfg.key))
        else:
            credentials, made = own_credentials(credentials_dir)
            if made:
                note = (f"no [provenance] certificate in this show: made Jadong's own local signing credentials in "
                        f"{credentials_dir} (keep them; `python run.py verify FILE` trusts their CA)")
                log.warning("%s", note)
                emit(on_event, "provenance", state="credentials made", folder=credentials_dir, reason=note)
        signer = Signer(credentials)
        return lambda data, suffix, record, title: signer.sign(data, suffix, record, title)

    return make


class Captures:
    """The show's captures: what fires one and what it keeps. Main thread (the writing is the
    archive's thread). `folder` is where captures go; `credentials_dir` where Jadong keeps its
    own signing credentials when the show names none."""

    def __init__(self, show: Show, on_event: EventHook | None, folder: Path, *,
                 credentials_dir: Path = DEFAULT_DIR, on_error: Callable[[str], None] | None = None,
                 sign: bool = True) -> None:
        self.show = show
        self.cfg = show.capture
        self._on_event = on_event
        self.archive = Archive(folder, int(self.cfg.quota_mb * 1_000_000),
                               _signer_factory(show, credentials_dir, on_event) if sign else None,
                               on_event=on_event, on_error=on_error)
        self._armed: list[_Armed] = []
        self._last_frame: GeneratedFrame | None = None
        self._last_prompt_t: float | None = None
        self.prompts_seen = 0  # new prompts that reached the screen (for every_n_prompts)
        self._clip: deque[tuple[float, np.ndarray]] = deque()
        self._done: dict[str, Callable[[Path, str], None]] = {}  # stem -> told on the main thread when written

    @property
    def folder(self) -> Path:
        return self.archive.folder

    # --- taking one ---------------------------------------------------------------------
    def take(self, frame: GeneratedFrame, trigger: Trigger, cue: str = "", style: str = "",
             now: float | None = None, done: Callable[[Path, str], None] | None = None) -> Path:
        """Capture `frame` now; returns the PNG's path (written a few milliseconds later, then
        the `capture` event, then `done(path, error)` on the main thread's next tick, error ""
        when written). Raises CaptureError when the writer is overwhelmed."""
        stem = self.archive.reserve()
        record = describe(frame, self.show, trigger, cue, style, stem)
        clip, fps = self._clip_frames(now)
        event = {"trigger": trigger.kind, "by": trigger.by, "generator": frame.generator, "cue": cue,
                 "source": frame.prompt.source}  # whose words the prompt is (the retention janitor reads it)
        if record["words_kept"]:
            event["prompt"] = frame.prompt.text
        path = self.archive.submit(CaptureJob(stem, frame.image, record, event, clip, fps))
        if done is not None:
            self._done[stem] = done
        return path

    def _clip_frames(self, now: float | None) -> tuple[tuple[np.ndarray, ...], float]:
        if self.cfg.clip_s <= 0 or len(self._clip) < 2:
            return (), 0.0
        frames = list(self._clip)
        span = frames[-1][0] - frames[0][0]
        fps = (len(frames) - 1) / span if span > 0 else 1.0
        return tuple(image for _, image in frames), min(60.0, max(1.0, fps))

    # --- captures that wait for their picture ------------------------------------------------
    def arm(self, trigger: Trigger, prompt_t: float, params_t: float, cue: str = "",
            now: float | None = None) -> None:
        """Capture the first picture made from these settings (a prompt and parameters stamped
        `prompt_t`, `params_t` or later) once it has settled on screen."""
        now = time.monotonic() if now is None else now
        if len(self._armed) >= MAX_ARMED:
            self._armed.pop(0)
        self._armed.append(_Armed(trigger, prompt_t, params_t, now, cue))

    def settle_s(self, frame: GeneratedFrame) -> float:
        """How long a new picture takes to settle: the prompt's blend, then the display's crossfade."""
        return min(MAX_SETTLE_S, frame.params.prompt_blend_s + self.show.display.crossfade_s)

    def tick(self, frame: GeneratedFrame | None, now: float | None = None, cue: str = "",
             style: str = "") -> list[Path]:
        """Every presented frame: remember it for a clip, count new prompts (every_n_prompts),
        and take the waiting captures whose picture has settled. Returns the paths taken."""
        now = time.monotonic() if now is None else now
        if frame is not None and frame is not self._last_frame:
            self._last_frame = frame
            self._remember(frame, now)
            self._count_prompt(frame, now, cue)
        self._tell_finished()
        taken: list[Path] = []
        for armed in list(self._armed):
            path = self._try(armed, frame, now, style)
            if path is not None:
                taken.append(path)
        return taken

    def _tell_finished(self) -> None:
        while self.archive.finished:
            stem, error = self.archive.finished.popleft()
            done = self._done.pop(stem, None)
            if done is not None:
                done(self.folder / f"{stem}.png", error)

    def _remember(self, frame: GeneratedFrame, now: float) -> None:
        if self.cfg.clip_s <= 0:
            return
        self._clip.append((now, frame.image))
        while self._clip and now - self._clip[0][0] > self.cfg.clip_s:
            self._clip.popleft()

    def _count_prompt(self, frame: GeneratedFrame, now: float, cue: str) -> None:
        first = self._last_prompt_t is None
        if frame.prompt.t == self._last_prompt_t:
            return
        self._last_prompt_t = frame.prompt.t
        if first:
            return  # the show's opening prompt is not a new one
        if frame.prompt.source == "attract":
            return  # attract mode's invitations are the show's, not what visitors made
        self.prompts_seen += 1
        n = self.cfg.every_n_prompts
        if n and self.prompts_seen % n == 0:
            by = "visitor" if frame.prompt.source == "speech" else frame.prompt.source
            self.arm(Trigger("every_n_prompts", f"{by} (prompt {self.prompts_seen}, every {n})"),
                     frame.prompt.t, frame.params.t, cue, now)

    def _try(self, armed: _Armed, frame: GeneratedFrame | None, now: float, style: str) -> Path | None:
        ready = frame is not None and frame.prompt.t >= armed.prompt_t and frame.params.t >= armed.params_t
        if frame is not None and ready:
            if armed.seen_at is None:
                armed.seen_at = now
            if now - armed.seen_at < self.settle_s(frame):
                return None
        elif now - armed.armed_at < ARM_TIMEOUT_S:
            return None
        self._armed.remove(armed)
        if frame is None:
            emit(self._on_event, "error", stage="capture",
                 reason=f"{armed.trigger.kind} capture ({armed.trigger.by}): no picture on screen "
                        f"within {ARM_TIMEOUT_S:g} s")
            return None
        try:
            return self.take(frame, armed.trigger, armed.cue, style, now)
        except CaptureError as exc:
            emit(self._on_event, "error", stage="capture", reason=str(exc))
            return None

    # --- shutting down ------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for the captures queued so far to be written (True if all were)."""
        return self.archive.flush(timeout)
