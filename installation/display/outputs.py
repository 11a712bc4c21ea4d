"""The outputs a show declares ([[outputs]]): screens, NDI sources and recordings, each showing
one stream through a presenter of its own (crossfade, caption, label, HUD and blackout as on
the one screen of a show without [[outputs]]). Main thread only.

A show without [[outputs]] has one output: the presenter on pygame.display's window, built from
[display] exactly as before outputs existed, pacing itself. With [[outputs]], each screen is
its own window (display/windows.py) on its monitor, or headless; an NDI output is a headless
presenter of its own size whose frames go to an NDI sender (display/ndi_out.py); a record
output is a headless presenter recording to its file. One loop renders every output in turn,
each at its own rate (`fps`), and then waits once, until the next frame of the fastest output:
no output waits for another, and controls are served during that one wait.

    outputs = build_outputs(show, title="Triptych", record=None, record_fps=30.0)
    outputs.open()
    while running:
        actions = outputs.poll_events()          # keys in whichever window has focus
        outputs.show_frames({1: frame1, 2: frame2})
        outputs.render()                          # every output that is due, then one wait
    outputs.close()
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pygame

from installation.core.events import EventHook, emit
from installation.core.messages import GeneratedFrame
from installation.core.worker import ErrorHandler
from installation.show import DisplayConfig, OutputConfig, Show, resolve_path, stream_number

from .presenter import FramePacer, Presenter, quit_pygame_display
from .windows import OutputWindow

log = logging.getLogger(__name__)

NDI_AND_RECORD_FPS = 30.0  # an NDI source's or a recording's rate when the output does not say


@dataclass(frozen=True)
class OutputPlan:
    """One output as the show declares it, with every unset key resolved from [display]."""

    number: int  # 1-based, in the show file's order
    kind: str  # "screen", "ndi" or "record"
    stream: int  # 1-based stream number
    display: DisplayConfig  # this output's own copy: mode, monitor, size, fps, caption, hud
    record_path: Path | None = None
    record_fps: float = NDI_AND_RECORD_FPS
    ndi_name: str = ""
    ndi_alpha: bool = False

    @property
    def label(self) -> str:
        where = {"screen": f"{self.display.mode} on monitor {self.display.monitor}",
                 "ndi": f"NDI {self.ndi_name!r}", "record": f"recording {self.record_path}"}[self.kind]
        return f"output {self.number} ({where}, stream {self.stream})"

    @property
    def windowed(self) -> bool:
        """A screen that wants a window of its own."""
        return self.kind == "screen" and self.display.mode != "headless"


def plan_outputs(show: Show) -> list[OutputPlan]:
    """Each [[outputs]] table resolved against [display]; [display] mode = "headless" (what
    --headless sets) makes every screen headless."""
    plans = []
    for i, out in enumerate(show.outputs):
        plans.append(_plan(i + 1, out, show))
    return plans


def _plan(number: int, out: OutputConfig, show: Show) -> OutputPlan:
    base = show.display
    stream = stream_number(show, out.stream) or 1  # the show file's validation named any unknown stream
    settings: dict[str, Any] = {
        "width": out.width or base.width,
        "height": out.height or base.height,
        "caption": base.caption if out.caption is None else out.caption,
    }
    if out.kind == "screen":
        settings.update(mode="headless" if base.mode == "headless" else (out.mode or base.mode),
                        monitor=base.monitor if out.monitor is None else out.monitor,
                        fps=out.fps or base.fps, hud=base.hud if out.hud is None else out.hud)
        return OutputPlan(number, "screen", stream, base.model_copy(update=settings))
    fps = out.fps or NDI_AND_RECORD_FPS
    settings.update(mode="headless", fps=fps, hud=bool(out.hud))
    display = base.model_copy(update=settings)
    if out.kind == "record":
        return OutputPlan(number, "record", stream, display, record_path=resolve_path(out.path), record_fps=fps)
    return OutputPlan(number, "ndi", stream, display, ndi_name=out.name.strip(), ndi_alpha=out.alpha)


class Output:
    """One output: its plan, its presenter, its window (screens) and its own schedule."""

    def __init__(self, plan: OutputPlan, presenter: Presenter, window: OutputWindow | None) -> None:
        self.plan = plan
        self.presenter = presenter
        self.window = window
        self.off = False  # an NDI output whose sender could not start: nothing to compose for
        self._period = 1.0 / plan.display.fps
        self._due: float | None = None

    def due(self, now: float) -> bool:
        """Whether this output presents a frame now, at its own `fps` (the loop may run faster)."""
        if self._due is None or now - self._due > self._period:
            self._due = now  # the first frame, or the loop stalled: start the schedule again
        if now + 1e-3 < self._due:
            return False
        self._due += self._period
        return True


class Outputs:
    """Every output of a show; implements the show control's `Screen` (control/host.py) for
    all of them at once. `primary` is output 1's presenter: the one captures, --record,
    --ndi and the first-frame events use, as they used the one presenter before outputs."""

    def __init__(self, outputs: list[Output], title: str, single: bool,
                 on_event: EventHook | None = None, on_error: ErrorHandler | None = None,
                 declared: list[OutputConfig] | None = None) -> None:
        if not outputs:
            raise ValueError("a show has at least one output")
        self.outputs = outputs
        self.declared = list(declared or [])  # the [[outputs]] these were built from (kept_for)
        self.title = title
        self.single = single  # the one presenter on pygame.display's window, as before outputs
        self._on_event = on_event
        self._on_error = on_error
        self._pace = FramePacer(max(o.plan.display.fps for o in outputs))
        self._driver_env_set = False
        self._opened = False
        self._caption_on = outputs[0].plan.display.caption
        self._hud_on = outputs[0].presenter.hud_visible

    @property
    def primary(self) -> Presenter:
        return self.outputs[0].presenter

    @property
    def presenters(self) -> list[Presenter]:
        return [o.presenter for o in self.outputs]

    @property
    def seen(self) -> bool:
        """Whether anything shows what is presented: a window, an NDI source, a recording."""
        return any(o.presenter.mode != "headless" or o.presenter.sinks or o.presenter.recorder is not None
                   for o in self.outputs)

    # --- opening and closing ---------------------------------------------------------------
    def open(self) -> Outputs:
        if self._opened:
            return self
        if self.single:
            self.primary.open()
        else:
            self._start_pygame()
            for out in self.outputs:
                out.presenter.open()
                if out.plan.kind == "ndi":
                    self._open_ndi(out)
                self._report(out)
        self._opened = True
        return self

    def _start_pygame(self) -> None:
        """pygame once for every output. Without a window to open, SDL's offscreen driver (it
        needs no screen); where no display opens, every screen goes on headless and says why."""
        if pygame.display.get_init():
            return
        wants_window = any(o.plan.windowed for o in self.outputs)
        if not wants_window and "SDL_VIDEODRIVER" not in os.environ:
            os.environ["SDL_VIDEODRIVER"] = "offscreen"
            self._driver_env_set = True
        try:
            pygame.display.init()
            return
        except pygame.error as exc:
            reason = f"no display could be opened ({exc})"
        log.warning("display: %s; every screen runs headless (no window) instead", reason)
        for out in self.outputs:
            if out.plan.windowed:
                out.presenter.cfg.mode = "headless"
                out.presenter.mode_note = f"{out.plan.display.mode} unavailable: {reason}"
        if "SDL_VIDEODRIVER" not in os.environ:
            os.environ["SDL_VIDEODRIVER"] = "offscreen"
            self._driver_env_set = True
        try:
            pygame.display.init()
        except pygame.error as exc:  # surfaces still draw without a video driver
            log.warning("display: SDL video could not start (%s); no keyboard or window events", exc)

    def _open_ndi(self, out: Output) -> None:
        from .ndi_out import NdiOutputSettings, open_ndi_output

        plan = out.plan
        settings = NdiOutputSettings(plan.ndi_name, fps=plan.display.fps, overlays=plan.display.caption,
                                     pixel_format="bgra" if plan.ndi_alpha else "bgrx")
        sink = open_ndi_output(settings, on_event=self._on_event, on_error=self._on_error)
        if sink is None:  # the reason is in the event log and on the console; the show goes on
            out.off = True
            out.presenter.mode_note = "NDI unavailable (see the event log)"
        else:
            out.presenter.add_sink(sink)

    def _report(self, out: Output) -> None:
        p, plan = out.presenter, out.plan
        fields: dict[str, Any] = {"number": plan.number, "kind": plan.kind, "stream": plan.stream, "mode": p.mode,
                                  "size": list(p.size), "fps": plan.display.fps}
        if plan.kind == "screen" and p.mode != plan.display.mode:
            fields.update(asked=plan.display.mode, reason=p.mode_note or "no display available; running headless")
        if out.window is not None and out.window.placed_on is not None:
            fields["monitor"] = out.window.placed_on
        if plan.kind == "ndi":
            fields["name"] = plan.ndi_name
            fields["state"] = "off" if out.off else "sending"
        if plan.kind == "record":
            fields["path"] = str(plan.record_path)
            if p.recording_error:
                fields["reason"] = p.recording_error
        emit(self._on_event, "output", **fields)

    def close(self) -> None:
        for out in self.outputs:
            try:
                out.presenter.close()
            except Exception:  # one output failing to close must not keep the others open
                log.exception("display: closing %s failed", out.plan.label)
        if not self.single:
            try:
                quit_pygame_display(self._driver_env_set)
            finally:
                self._driver_env_set = False
        self._opened = False

    # --- the loop ----------------------------------------------------------------------------
    def poll_events(self) -> list[str]:
        """Keys and window events, each handled by the presenter of the window it happened in
        (h and c toggle the HUD and caption there); the actions for the app ("quit", "go",
        "back", "capture") from any of them."""
        if self.single:
            return self.primary.poll_events()
        try:
            events = pygame.event.get()
        except pygame.error:
            return []
        actions = []
        for ev in events:
            owner = next((o.presenter for o in self.outputs if o.window is not None and o.window.owns(ev)), None)
            if owner is None and ev.type not in (pygame.QUIT, pygame.KEYDOWN):
                continue  # another window's event, or one about no window
            action = (owner or self.primary).handle_event(ev)
            if action:
                actions.append(action)
        return actions

    def show_frames(self, frames: Mapping[int, GeneratedFrame | None]) -> None:
        """Each stream's newest frame (by stream number) to the outputs that show it; an output
        whose stream the running show lacks (after /jadong/show) shows stream 1."""
        for out in self.outputs:
            out.presenter.show_frame(frames.get(out.plan.stream, frames.get(1)))

    def render(self) -> None:
        """Every output that is due presents a frame; then one wait until the next is due."""
        if self.single:
            self.primary.render()
            return
        now = time.monotonic()
        for out in self.outputs:
            if not out.off and out.due(now):
                out.presenter.render(wait=False)
        self._pace.wait()

    def set_idle(self, idle: Callable[[float], None]) -> None:
        """What the loop does while it waits for the next frame (the app serves controls)."""
        if self.single:
            self.primary.set_idle(idle)
        self._pace._sleep = idle

    # --- the Screen (control/host.py), for every output --------------------------------------
    @property
    def caption_visible(self) -> bool:
        return self._caption_on

    @property
    def hud_visible(self) -> bool:
        return self._hud_on

    @property
    def crossfade_s(self) -> float:
        return self.primary.crossfade_s

    @property
    def current_frame(self) -> GeneratedFrame | None:
        return self.primary.current_frame

    def set_crossfade(self, seconds: float) -> None:
        for p in self.presenters:
            p.set_crossfade(seconds)

    def set_caption_visible(self, on: bool) -> None:
        """Captions on or off where the show has them (an output with `caption = false` never
        shows them)."""
        self._caption_on = bool(on)
        for out in self.outputs:
            out.presenter.set_caption_visible(self._caption_on and (self.single or out.plan.display.caption))

    def set_hud_visible(self, on: bool) -> None:
        """The HUD on every screen (and recordings that show it): staff's view, never NDI's."""
        self._hud_on = bool(on)
        for out in self.outputs:
            shows_hud = self.single or out.plan.kind == "screen" or out.plan.display.hud
            out.presenter.set_hud_visible(self._hud_on and shows_hud)

    def set_caption(self, text: str) -> None:
        for p in self.presenters:
            p.set_caption(text)

    def set_blackout(self, on: bool, fade_s: float = 0.0) -> None:
        for p in self.presenters:
            p.set_blackout(on, fade_s)

    def set_label(self, text: str) -> None:
        for p in self.presenters:
            p.set_label(text)

    def set_hud(self, lines: list[str]) -> None:
        for p in self.presenters:
            p.set_hud(lines)

    def set_silhouette(self, mask: np.ndarray | None, generated: tuple[int, int], streams: set[int]) -> None:
        """The visitor's outline, on the outputs whose stream restyles the whole camera frame
        (`streams`): a crop's picture does not line up with the camera's outline."""
        for out in self.outputs:
            if out.plan.stream in streams:
                out.presenter.set_silhouette(mask, generated)

    def take_display(self, display: DisplayConfig) -> None:
        """Another show's [display] after a show switch: the outputs stay open (windows, NDI,
        recordings carry over), with the new show's crossfade and caption settings."""
        if self.single:
            p = self.primary
            for key in ("crossfade_s", "caption", "caption_seconds", "hud"):
                setattr(p.cfg, key, getattr(display, key))
            p.caption_visible = display.caption
            p.hud_visible = display.hud
            self._caption_on, self._hud_on = display.caption, display.hud
            return
        for p in self.presenters:
            for key in ("crossfade_s", "caption_seconds", "caption_size"):
                setattr(p.cfg, key, getattr(display, key))

    def kept_for(self, show: Show) -> str:
        """After a switch to `show` (/jadong/show): "" when its [[outputs]] are the ones open, else
        why they are not applied. Windows, NDI sources and recordings stay open across a switch
        (no screen goes dark, no receiver loses its source); another show's [[outputs]] take
        effect when Jadong is started with that show."""
        if list(show.outputs) == self.declared:
            return ""
        n = len(self.outputs)
        theirs = f"{len(show.outputs)} [[outputs]]" if show.outputs else "no [[outputs]] (one screen)"
        return (f"the {n} output{'s' if n != 1 else ''} already open carr{'y' if n != 1 else 'ies'} on; "
                f"{show.path or show.show.name} declares {theirs}, which apply when Jadong is started "
                f"(or restarted) with it")

    def stopped_recordings(self) -> list[str]:
        """Why each recording the recorder had to stop (the disk filling up) stopped."""
        reasons = []
        for out in self.outputs:
            recorder: Any = out.presenter.recorder
            if recorder is not None and recorder.stopped is not None:
                reasons.append(str(recorder.stopped) if self.single else f"{out.plan.label}: {recorder.stopped}")
        return reasons


def build_outputs(show: Show, title: str, record: Path | None = None, record_fps: float = 30.0,
                  on_event: EventHook | None = None, on_error: ErrorHandler | None = None) -> Outputs:
    """The show's outputs, not yet open. `record` (--record) records output 1 as shown."""
    if not show.outputs:
        presenter = Presenter(show.display, record_path=record, title=title,
                              record_fps=min(record_fps, show.display.fps))
        return Outputs([Output(OutputPlan(1, "screen", 1, show.display), presenter, None)], title, single=True,
                       on_event=on_event, on_error=on_error)
    outputs = []
    for plan in plan_outputs(show):
        cfg = plan.display
        window = None
        if plan.windowed:
            window = OutputWindow(f"{title} · output {plan.number}", cfg.monitor, cfg.mode == "fullscreen",
                                  (cfg.width, cfg.height))
        record_path, fps = plan.record_path, plan.record_fps
        if plan.number == 1 and record is not None:
            if plan.kind == "record":
                log.warning("display: --record %s replaces output 1's own recording (%s)", record, record_path)
            record_path, fps = record, record_fps
        presenter = Presenter(cfg, record_path=record_path, title=title, record_fps=min(fps, cfg.fps),
                              window=window, shared_pygame=True)
        outputs.append(Output(plan, presenter, window))
    return Outputs(outputs, title, single=False, on_event=on_event, on_error=on_error, declared=list(show.outputs))

