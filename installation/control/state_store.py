"""The show state that survives a restart: saved atomically on every change, per show, and
restored when that show starts again (a crash, the watchdog, a power cut: the show comes back
where it was, not at the top).

What comes back, and why (everything else starts as the show file says):
- the cue (by number, checked by name: an edited show's removed cue just resets the cue, and
  its clock starts afresh), the words painted, their source and style, the negative prompt;
- the performer's generation settings (strength, steps, seed, seed drift, mode, prompt blend,
  and a cue's LoRA weight and mask), listening, the screen's crossfade, caption and HUD
  switches, the blackout fade, and the blackout itself (a room closed for the night stays
  dark after a power cut);
- each stream's own settings ([[streams]], /jadong/stream/N/...): whether visitors' words reach
  it, its style, strength and seed, and words of its own (a stream the edited show no longer
  has is left out, with a note);
- not freeze: the frozen picture died with the process, and a frozen start would hold the
  starting card; not the caption text (a visitor's caption fades by itself), the curation
  queue, last error or transcript, which belong to the run that ended.
Only ShowState fields are kept: a transient prompt that does not live there (attract mode's)
is never saved in place of the show's own. A show that keeps no visitor's words ([privacy]
keep_words = false) saves none either: a visitor's (or an OSC) prompt is saved as the show's
own initial one.

The main loop compares a small snapshot each frame (a few microseconds) and hands a changed one
to `StateStore.offer`; a writer thread coalesces (at most one write per show every
`MIN_INTERVAL_S`, the last one at shutdown), so "every change" is on disk within about half a
second, and a fader moving at 60 Hz costs two writes a second. A write is temp file, flush,
fsync, rename, fsync of the folder. A full or read-only disk is one `error` event (stage
"state") and a retry every `RETRY_S`; a corrupt file is renamed `.corrupt-TIME`, with a log
line and an event, and the show starts from its top.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from installation.core.events import EventHook, emit
from installation.core.faults import NO_FAULTS, FaultInjector
from installation.core.visitor_words import SHOWS_OWN_SOURCES
from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS

from .addresses import OscArgumentError, lookup, validate_args
from .show_control import ShowControl
from .streams import StreamControl

log = logging.getLogger(__name__)

SCHEMA = 1
MIN_INTERVAL_S = 0.5  # at most one write per show this often; the newest state wins
RETRY_S = 5.0  # after a failed write (a full disk), the next try
MAX_FILE_BYTES = 1_000_000  # a state file is about a kilobyte; anything this big is not ours
MAX_WORDS_CHARS = 4 * MAX_PROMPT_CHARS  # visitors' words are cut when painted, not when heard
MASKS = ("", "off", "inside", "outside")


@dataclass(frozen=True, slots=True)
class SavedStream:
    """One stream's own settings (/jadong/stream/N/...); None: the show's."""

    index: int
    words: bool = True  # visitors' words reach it
    style: str = ""
    strength: float | None = None
    seed: int | None = None
    own_words: str = ""  # words of its own (/jadong/stream/N/prompt); "" paints the show's


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a restart brings back (see the module note). Compared every frame: equality is the
    whole change detection."""

    show: str
    cue_index: int = -1  # -1: before the first cue
    cue_name: str = ""
    words: str = ""
    templated: bool = False
    source: str = "show"
    negative: str = ""
    approved_by: str = ""
    style: str = ""
    strength: float = 0.5
    steps: int = 1
    seed: int = 42
    seed_drift: float = 0.0
    mode: str = "img2img"
    prompt_blend_s: float = 0.0
    lora_scale: float | None = None
    mask: str = ""
    listening: bool = True
    blackout: bool = False
    blackout_fade_s: float = 1.0
    crossfade_s: float = 0.0
    caption: bool = True
    hud: bool = False
    streams: tuple[SavedStream, ...] = ()
    # The prompt's text, for the people who read the file: it follows from the words, style and
    # template (restore paints it again), and a scene prompt changing is no reason to write.
    prompt: str = field(default="", compare=False)


def snapshot(show: str, control: ShowControl, streams: StreamControl | None = None) -> SavedState:
    """The state to keep, read from the show control, its screen and the streams (main thread)."""
    st, p, screen = control.state, control.state.params, control.host.screen
    words, templated, approved_by, text = st.words, st.templated, st.approved_by, st.prompt.text
    source = st.prompt.source
    if source not in SHOWS_OWN_SOURCES and not control.show.privacy.keep_words:
        words, templated, source, approved_by, text = "", False, "show", "", ""
    return SavedState(
        show=show, cue_index=st.cue_index, cue_name=control.cue_name(), words=words, templated=templated,
        source=source, negative=st.prompt.negative, approved_by=approved_by, style=st.style,
        strength=p.strength, steps=p.steps, seed=p.seed, seed_drift=p.seed_drift, mode=p.mode,
        prompt_blend_s=p.prompt_blend_s, lora_scale=p.lora_scale, mask=p.mask, listening=st.listening,
        blackout=st.blackout, blackout_fade_s=st.blackout_fade_s, crossfade_s=float(screen.crossfade_s),
        caption=bool(screen.caption_visible), hud=bool(screen.hud_visible), prompt=text,
        streams=_streams_snapshot(control, streams))


def _streams_snapshot(control: ShowControl, streams: StreamControl | None) -> tuple[SavedStream, ...]:
    if streams is None:
        return ()
    keep_words = control.show.privacy.keep_words  # a stream's own words come over OSC: a visitor's, maybe
    return tuple(SavedStream(st.index, st.words, st.style, st.strength, st.seed,
                             st.basis.words if st.own and keep_words else "") for st in streams.streams)


def restore(control: ShowControl, saved: SavedState, now: float, blackout: bool = True,
            streams: StreamControl | None = None) -> list[str]:
    """Bring `saved` back into a show that has just been built (main thread). Returns notes on
    what the edited show no longer has (a cue, a style), which start afresh instead.
    `blackout=False` keeps the screen as it is (a show switch carries the room's blackout)."""
    notes: list[str] = []
    st, show = control.state, control.show
    style = saved.style
    if style and style not in show.styles:
        notes.append(f"style {style!r} is no longer in the show: its own [prompt] template is used")
        style = ""
    st.style = style
    control.set_params(strength=saved.strength, steps=saved.steps, seed=saved.seed, seed_drift=saved.seed_drift,
                       mode=saved.mode, prompt_blend_s=saved.prompt_blend_s, lora_scale=saved.lora_scale,
                       mask=saved.mask)
    st.prompt = replace(st.prompt, negative=saved.negative)
    st.words, st.templated, st.approved_by = saved.words, saved.templated, saved.approved_by
    control.paint(saved.source if saved.words else "show")
    if saved.cue_index >= 0:
        index = _cue_index(control, saved)
        if index is None:
            notes.append(f"cue {saved.cue_index + 1} ({saved.cue_name!r}) is no longer in the show: "
                         "starting before the first cue")
        else:
            control.resume_cue(index, now)
    screen = control.host.screen
    screen.set_crossfade(saved.crossfade_s)
    screen.set_caption_visible(saved.caption)
    screen.set_hud_visible(saved.hud)
    st.blackout_fade_s = saved.blackout_fade_s
    if saved.listening != st.listening:
        control.set_listening(saved.listening)
    if blackout and saved.blackout:
        st.blackout = True
        screen.set_blackout(True, 0.0)  # dark from the first frame: no fade through the picture
    if streams is not None:
        notes += _restore_streams(streams, saved.streams, show.styles)
    return notes


def _restore_streams(streams: StreamControl, saved: tuple[SavedStream, ...], styles: dict) -> list[str]:
    notes: list[str] = []
    have = len(streams.streams)
    for one in saved:
        if one.index > have:
            notes.append(f"stream {one.index} is no longer in the show: its settings are left out")
            continue
        style = one.style
        if style and style not in styles:
            notes.append(f"stream {one.index}: style {style!r} is no longer in the show: the stream's own is used")
            style = ""
        streams.restore_stream(one.index, words=one.words, style=style, strength=one.strength, seed=one.seed,
                               own_words=one.own_words)
    return notes


def _cue_index(control: ShowControl, saved: SavedState) -> int | None:
    """The saved cue in the show as it is now: at its number if the name still matches there,
    else wherever a cue of that name moved; None if it is gone."""
    cues = control.show.cues
    if 0 <= saved.cue_index < len(cues) and cues[saved.cue_index].name == saved.cue_name:
        return saved.cue_index
    return next((i for i, cue in enumerate(cues) if cue.name == saved.cue_name), None)


# --- the file ----------------------------------------------------------------------------------
class StateFileError(ValueError):
    """A state file that cannot be used; the message names the field and what was wrong."""


class OtherShow(Exception):
    """A valid file that holds another show's state (one `--state FILE` for several shows)."""


# Fields checked exactly as the same value arriving over OSC would be.
_BY_ADDRESS = {
    "negative": "/jadong/negative", "style": "/jadong/style", "strength": "/jadong/strength",
    "steps": "/jadong/steps", "seed": "/jadong/seed", "seed_drift": "/jadong/seed/drift", "mode": "/jadong/mode",
    "prompt_blend_s": "/jadong/prompt/blend", "listening": "/jadong/listen", "blackout": "/jadong/blackout",
    "blackout_fade_s": "/jadong/blackout/fade", "crossfade_s": "/jadong/crossfade", "caption": "/jadong/caption",
    "hud": "/jadong/hud",
}


def _text(value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise StateFileError(f"expected a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise StateFileError(f"expected at most {max_chars} characters, got {len(value)}")
    return value


def _check(name: str, value: Any) -> Any:
    if name in _BY_ADDRESS:
        row = lookup(_BY_ADDRESS[name])
        assert row is not None  # the table is fixed; test_state_store checks every mapped address exists
        try:
            return validate_args(row, (value,))[0]
        except OscArgumentError as exc:
            raise StateFileError(str(exc).removeprefix("argument: ")) from None
    if name == "cue_index":
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise StateFileError(f"expected a whole number from -1 up, got {value!r}")
        return value
    if name == "templated":
        if not isinstance(value, bool):
            raise StateFileError(f"expected true or false, got {value!r}")
        return value
    if name == "lora_scale":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 2.0:
            raise StateFileError(f"expected null or a number from 0 to 2, got {value!r}")
        return float(value)
    if name == "streams":
        return _check_streams(value)
    if name == "mask":
        if value not in MASKS:
            raise StateFileError(f"expected one of {', '.join(repr(m) for m in MASKS)}, got {value!r}")
        return value
    limits = {"words": MAX_WORDS_CHARS, "prompt": MAX_WORDS_CHARS, "cue_name": MAX_NAME_CHARS,
              "source": MAX_NAME_CHARS, "approved_by": MAX_PROMPT_CHARS, "show": MAX_NAME_CHARS * 4}
    return _text(value, limits[name])


def _check_streams(value: Any) -> tuple[SavedStream, ...]:
    if not isinstance(value, list) or len(value) > 64:
        raise StateFileError(f"expected a list of at most 64 streams, got {type(value).__name__}")
    out: list[SavedStream] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise StateFileError(f"[{i}]: expected an object, got {type(item).__name__}")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 64 or index != i + 1:
            raise StateFileError(f"[{i}].index: expected {i + 1}, got {index!r}")
        words, style, strength = item.get("words", True), item.get("style", ""), item.get("strength")
        seed, own = item.get("seed"), item.get("own_words", "")
        if not isinstance(words, bool):
            raise StateFileError(f"[{i}].words: expected true or false, got {words!r}")
        if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                     or not 0.0 <= strength <= 1.0):
            raise StateFileError(f"[{i}].strength: expected null or a number from 0 to 1, got {strength!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1):
            raise StateFileError(f"[{i}].seed: expected null or a whole number from 0 to {2**31 - 1}, got {seed!r}")
        try:
            style, own = _text(style, MAX_NAME_CHARS), _text(own, MAX_PROMPT_CHARS)
        except StateFileError as exc:
            raise StateFileError(f"[{i}]: {exc}") from None
        out.append(SavedStream(index, words, style, None if strength is None else float(strength), seed, own))
    return tuple(out)


def parse_saved(data: Any, defaults: SavedState) -> SavedState:
    """A state file's content, checked field by field; a field the file lacks keeps the
    show's own value (`defaults`). StateFileError names the first bad field; OtherShow when the
    file is valid but holds another show."""
    if not isinstance(data, dict):
        raise StateFileError(f"expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise StateFileError(f"schema: expected {SCHEMA} (what this Jadong writes), got {data.get('schema')!r}")
    show = _check("show", data.get("show"))
    if show != defaults.show:
        raise OtherShow(show)
    values = {}
    for f in fields(SavedState):
        if f.name in data and f.name != "show":
            try:
                values[f.name] = _check(f.name, data[f.name])
            except StateFileError as exc:
                raise StateFileError(f"{f.name}: {exc}") from None
    return replace(defaults, **values)


def to_json(saved: SavedState, wall: float | None = None) -> bytes:
    data = {"schema": SCHEMA, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall)),
            **asdict(saved)}
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """`data` in `path`, all or nothing, and durable: a temp file in the same folder is written,
    flushed and fsynced, renamed over `path`, and the folder fsynced so the rename survives a
    power cut. A failure at any step leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_aside(path: Path, wall: float | None = None) -> Path:
    """Rename an unusable file out of the way (kept for whoever wants to look), never over
    another one set aside."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(wall))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


# --- the store ---------------------------------------------------------------------------------
class StateStore:
    """Saved states: one file per show in `folder` (state/SHOW.json), or every show in one
    `file` (`--state PATH`; it holds the state of the show that ran last). `offer` is the main
    thread's; the writes happen on the "state-writer" thread. `faults`: the soak harness's
    injected full disk fails these writes too, as ENOSPC would."""

    def __init__(self, folder: Path | None = None, file: Path | None = None, on_event: EventHook | None = None,
                 min_interval_s: float = MIN_INTERVAL_S, retry_s: float = RETRY_S,
                 faults: FaultInjector = NO_FAULTS) -> None:
        if (folder is None) == (file is None):
            raise ValueError("StateStore: give a folder or a file")
        self.folder, self.file = folder, file
        self._on_event = on_event
        self.min_interval_s, self.retry_s = min_interval_s, retry_s
        self._faults = faults
        self._cond = threading.Condition()
        self._pending: dict[Path, SavedState] = {}
        self._newest: dict[Path, SavedState] = {}  # offered in this run: newer than the file until written
        self._next_write_t = 0.0
        self._closing = False
        self._failures = 0
        self.writes = 0
        self.save_seconds: collections.deque[float] = collections.deque(maxlen=1000)
        self._thread: threading.Thread | None = None  # started by the first offer

    def path_for(self, show: str) -> Path:
        if self.file is not None:
            return self.file
        assert self.folder is not None
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in show).lstrip(".") or "show"
        return self.folder / f"{safe}.json"

    # --- the main thread's side -------------------------------------------------------------
    def load(self, defaults: SavedState) -> SavedState | None:
        """The saved state of `defaults.show`, or None (none saved, another show's, or set aside
        as corrupt: each but the first with a log line and an event)."""
        path = self.path_for(defaults.show)
        with self._cond:
            newest = self._newest.get(path)
        if newest is not None and newest.show == defaults.show:
            return newest  # this run's own, perhaps not written yet (a switch back to a show)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._error(f"{path}: cannot be read ({exc}); the show starts from its top")
            return None
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise StateFileError(f"larger than {MAX_FILE_BYTES:,} bytes: not a state file")
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise StateFileError(f"not JSON ({exc})") from None
            return parse_saved(data, defaults)
        except OtherShow as other:
            log.info("%s holds the state of show %r, not %r: %r starts from its top", path, str(other),
                     defaults.show, defaults.show)
            return None
        except StateFileError as exc:
            self._set_aside(path, str(exc))
            return None

    def offer(self, saved: SavedState) -> None:
        """A changed state to save (written within `min_interval_s`, the newest winning)."""
        path = self.path_for(saved.show)
        with self._cond:
            if self._closing:
                raise RuntimeError("StateStore: offer after close")
            waiting = bool(self._pending)  # the writer already waits for its next turn: no need to wake it
            self._pending[path] = saved
            self._newest[path] = saved
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
                self._thread.start()
            if not waiting:
                self._cond.notify()

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is pending now (the final save) and stop the writer; True if all of it
        was written."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        with self._cond:
            return not self._pending and not thread.is_alive()

    # --- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (not self._pending or time.monotonic() < self._next_write_t):
                    wait = None if not self._pending else self._next_write_t - time.monotonic()
                    self._cond.wait(wait)
                batch, self._pending = self._pending, {}
                closing = self._closing
            failed = self._write_batch(batch)
            with self._cond:
                for path, saved in failed.items():
                    self._pending.setdefault(path, saved)  # a newer offer meanwhile wins
                delay = self.retry_s if failed else self.min_interval_s
                self._next_write_t = time.monotonic() + delay
                if closing:
                    return  # one last try at shutdown; a disk that is still full loses ~0.5 s of changes

    def _write_batch(self, batch: dict[Path, SavedState]) -> dict[Path, SavedState]:
        failed = {}
        for path, saved in batch.items():
            t0 = time.perf_counter()
            try:
                if self._faults.disk_full():
                    raise OSError(errno.ENOSPC, "No space left on device (injected fault)")
                write_atomic(path, to_json(saved))
            except OSError as exc:
                failed[path] = saved
                self._failures += 1
                if self._failures == 1:  # one event per outage, not one per retry
                    self._error(f"{path}: cannot be saved ({exc}); retrying every {self.retry_s:g} s, "
                                "the show goes on")
                continue
            self.save_seconds.append(time.perf_counter() - t0)
            self.writes += 1
            if self._failures:
                log.info("state saved again in %s after %d failed attempts", path, self._failures)
                emit(self._on_event, "state", action="saved again", path=path, failed_attempts=self._failures)
                self._failures = 0
        return failed

    # --- reporting ---------------------------------------------------------------------------
    def _error(self, reason: str) -> None:
        log.error("%s", reason)
        emit(self._on_event, "error", stage="state", reason=reason)

    def _set_aside(self, path: Path, why: str) -> None:
        try:
            target = set_aside(path)
        except OSError as exc:
            self._error(f"{path}: {why}; it could not be set aside ({exc}); the show starts from its top")
            return
        self._error(f"{path}: {why}; set aside as {target.name}; the show starts from its top")


__all__ = ["MIN_INTERVAL_S", "OtherShow", "RETRY_S", "SCHEMA", "SavedState", "StateFileError", "StateStore",
           "parse_saved", "restore", "set_aside", "snapshot", "to_json", "write_atomic"]
