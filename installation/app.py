"""Builds the components a show asks for, runs them, and owns shutdown.

Threads: camera, microphone, speech and generator workers, and the OSC server, each feeding
channels. The main thread owns pygame and the show state: it applies controls, turns
transcripts into prompts, and presents the newest frame at the display's rate.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .channels import DropOldestQueue, LatestSlot
from .events import EventLog, FloodSummary
from .generation import params_from_config
from .messages import AudioChunk, CameraFrame, Control, GeneratedFrame, GenerationParams, Prompt, Transcript
from .prompting import Prompter
from .show import Show
from .worker import Worker, stop_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the command line may change about a show for one run."""

    seconds: float | None = None
    record: Path | None = None
    log_path: Path | None = None
    started_mono: float | None = None  # when the process started, for start-up timing


@dataclass
class ShowState:
    """What the performer and the visitors have set; owned by the main thread only."""

    prompt: Prompt
    params: GenerationParams
    caption: str = ""
    last_transcript: str = ""
    last_error: str = ""


class App:
    def __init__(self, show: Show, options: RunOptions = RunOptions()) -> None:
        self.show = show
        self.options = options
        self.stop_event = threading.Event()
        self.events = EventLog(options.log_path)
        self._osc_log = FloodSummary(self.events, "osc", burst=20, window_s=1.0)
        self.prompter = Prompter(show.prompt)
        gen = show.generator
        self.state = ShowState(
            prompt=self.prompter.initial(),
            params=params_from_config(gen),
        )
        # Channels: sampled state in latest-value slots, streams and events in bounded queues.
        self.camera_slot: LatestSlot[CameraFrame] = LatestSlot("camera")
        self.audio_queue: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", maxsize=1500)  # 30 s of 20 ms chunks
        self.transcripts: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", maxsize=16)
        self.prompt_slot: LatestSlot[Prompt] = LatestSlot("prompt", self.state.prompt)
        self.params_slot: LatestSlot[GenerationParams] = LatestSlot("params", self.state.params)
        self.frame_slot: LatestSlot[GeneratedFrame] = LatestSlot("frames")
        self.controls: DropOldestQueue[Control] = DropOldestQueue("controls", maxsize=1024)
        self.workers: list[Worker] = []
        self.osc = None
        self.presenter = None
        self.generator_worker = None
        self._painted_prompt_t: float | None = None

    # --- events -------------------------------------------------------------------------
    def on_event(self, event: str, **fields: Any) -> None:
        if event == "osc":
            self._osc_log.write(str(fields.get("address", "")), **fields)
            return
        self.events.write(event, **fields)
        if event == "error":
            self.state.last_error = str(fields.get("reason") or fields.get("message") or "")

    def on_worker_error(self, stage: str, exc: BaseException) -> None:
        self.events.write("error", stage=stage, reason=f"{type(exc).__name__}: {exc}")

    # --- building -----------------------------------------------------------------------
    def _build_camera(self) -> None:
        from .camera import CameraWorker, open_frame_source

        source = open_frame_source(self.show.camera)
        if source is None:
            self.camera_slot = None  # type: ignore[assignment]
            return
        self.workers.append(CameraWorker(source, self.camera_slot, retry_s=self.show.camera.retry_s,
                                         on_error=self.on_worker_error, on_event=self.on_event))

    def _build_speech(self) -> None:
        if not self.show.speech.enabled:
            return
        from .audio import AudioUnavailable, MicWorker, open_audio_source

        try:
            source = open_audio_source(self.show.microphone)
        except AudioUnavailable as exc:
            self.events.write("error", stage="microphone", reason=str(exc))
            log.warning("no speech this run: %s", exc)
            return
        if source is None:
            return
        from .speech import Endpointer, SpeechWorker
        from .transcribe import load_transcriber

        try:
            transcriber = load_transcriber(self.show.speech)
        except Exception as exc:  # a wrong engine name must not stop the pictures
            self.events.write("error", stage="speech", reason=str(exc))
            return
        self.workers.append(MicWorker(source, self.audio_queue, on_error=self.on_worker_error))
        self.workers.append(SpeechWorker(self.audio_queue, transcriber, Endpointer(self.show.speech),
                                         self.transcripts, on_error=self.on_worker_error,
                                         on_event=self.on_event))

    def _build_generator(self) -> None:
        from .generation import GeneratorWorker, choose_generator
        from .preview import PreviewGenerator

        gen_cfg = self.show.generator
        generator, reason = choose_generator(gen_cfg)
        fallback = generator if isinstance(generator, PreviewGenerator) else PreviewGenerator(
            gen_cfg.width, gen_cfg.height, reason=f"Preview while {gen_cfg.model} loads")
        self.generator_worker = GeneratorWorker(
            generator, fallback, self.prompt_slot, self.params_slot, self.camera_slot, self.frame_slot,
            gen_cfg, on_error=self.on_worker_error, on_event=self.on_event)
        self.workers.append(self.generator_worker)

    def _build_osc(self) -> None:
        if not self.show.osc.enabled:
            return
        from .osc import OscServer

        self.osc = OscServer(self.show.osc, self.controls, on_event=self.on_event)
        try:
            self.osc.start()
        except OSError as exc:
            self.events.write("error", stage="osc", reason=str(exc))
            log.error("OSC disabled: %s", exc)
            self.osc = None

    def _build_display(self) -> None:
        from .display import Presenter

        self.presenter = Presenter(self.show.display, record_path=self.options.record,
                                   title=self.show.show.title or self.show.show.name)
        self.presenter.open()
        if self.presenter.mode != self.show.display.mode:
            self.events.write("display", mode=self.presenter.mode, asked=self.show.display.mode,
                              reason="no display available; running headless")

    # --- show state (main thread only) ---------------------------------------------------
    def set_prompt(self, prompt: Prompt) -> None:
        self.state.prompt = prompt
        self.prompt_slot.put(prompt)
        self._painted_prompt_t = prompt.t
        self.events.write("prompt", text=prompt.text, source=prompt.source, negative=prompt.negative)

    def set_params(self, **changes: Any) -> None:
        self.state.params = replace(self.state.params, t=time.monotonic(), **changes)
        self.params_slot.put(self.state.params)

    def handle_control(self, control: Control) -> None:
        address = control.address.lower()
        if address == "/jadong/quit":
            self.events.write("quit", source="osc", sender=control.sender)
            self.stop_event.set()
        elif address == "/jadong/prompt":
            prompt = self.prompter.from_text(str(control.args[0]), source="osc")
            if prompt is not None:
                self.set_prompt(prompt)
        elif address == "/jadong/strength":
            self.set_params(strength=float(control.args[0]))
        else:
            log.debug("control %s has no handler yet", address)

    def handle_transcript(self, transcript: Transcript) -> None:
        prompt = self.prompter.from_speech(transcript)
        if prompt is None:
            return
        self.events.write("transcript", text=transcript.text, language=transcript.language,
                          english=transcript.english, utterance_end=round(transcript.utterance_end_t, 4),
                          latency_s=round(transcript.t - transcript.utterance_end_t, 3))
        self.state.last_transcript = transcript.text
        self.state.caption = prompt.caption
        if self.presenter is not None:
            self.presenter.set_caption(prompt.caption)
        self.set_prompt(prompt)

    # --- status ----------------------------------------------------------------------------
    def hud_lines(self) -> list[str]:
        lines = []
        if self.presenter is not None:
            lines.append(f"display {self.presenter.fps:5.1f} fps  ({self.presenter.mode})")
        for w in self.workers:
            st = w.status()
            err = f"  errors {st.errors}" if st.errors else ""
            lines.append(f"{st.name:<10} {st.rate:5.1f}/s{err}")
        drops = []
        for ch in (self.camera_slot, self.audio_queue, self.frame_slot, self.controls):
            if ch is not None:
                s = ch.stats()
                drops.append(f"{s.name} {s.dropped}")
        lines.append("dropped: " + ", ".join(drops))
        gw = self.generator_worker
        if gw is not None:
            lines.append(f"generator {gw.active_name}  model {gw.active_model or '-'}")
        return lines

    # --- running ---------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, _frame):
            self.events.write("signal", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def start(self) -> None:
        self.events.write("start", show=self.show.show.name, path=self.show.path,
                          process_start_mono=self.options.started_mono)
        self._build_display()
        self._build_camera()
        self._build_generator()
        self._build_speech()
        self._build_osc()
        for w in self.workers:
            w.start()
        self.events.write("prompt", text=self.state.prompt.text, source="show",
                          negative=self.state.prompt.negative)

    def loop(self) -> None:
        assert self.presenter is not None
        t0 = time.monotonic()
        first_frame_logged = False
        last_label = None
        shown_prompt_t = None
        while not self.stop_event.is_set():
            for action in self.presenter.poll_events():
                if action == "quit":
                    self.events.write("quit", source="keyboard")
                    self.stop_event.set()
            for control in self.controls.drain():
                try:
                    self.handle_control(control)
                except Exception as exc:  # a bad control must not end the show
                    self.events.write("error", stage="control", address=control.address, reason=str(exc))
            for transcript in self.transcripts.drain():
                self.handle_transcript(transcript)

            frame = self.frame_slot.get()
            self.presenter.show_frame(frame)
            gw = self.generator_worker
            if gw is not None and gw.label != last_label:
                last_label = gw.label
                self.presenter.set_label(gw.label)
            if self.presenter.hud_visible:
                self.presenter.set_hud(self.hud_lines())
            self.presenter.render()

            if frame is not None and not first_frame_logged and self.presenter.first_frame_t is not None:
                first_frame_logged = True
                start = self.options.started_mono or t0
                self.events.write("frame", first=True, generator=frame.generator,
                                  seconds_since_start=round(self.presenter.first_frame_t - start, 3))
            # A new prompt on screen, or the same prompt from another generator (e.g. the model
            # finished loading and took over from the preview).
            if frame is not None and (frame.prompt.t, frame.generator) != shown_prompt_t:
                shown_prompt_t = (frame.prompt.t, frame.generator)
                self.events.write("presented", prompt=frame.prompt.text, source=frame.prompt.source,
                                  generator=frame.generator, latency_s=round(time.monotonic() - frame.prompt.t, 3))
            if self.options.seconds is not None and time.monotonic() - t0 >= self.options.seconds:
                self.events.write("quit", source="timer", seconds=self.options.seconds)
                break

    def shutdown(self) -> list[str]:
        hung = stop_all(self.workers, timeout=8.0)
        if self.osc is not None:
            self.osc.stop()
        self._osc_log.flush()
        if self.presenter is not None:
            self.presenter.close()
        self.events.write("stop", hung=hung, **self._drop_counts())
        self.events.close()
        return hung

    def _drop_counts(self) -> dict[str, int]:
        out = {}
        for ch in (self.camera_slot, self.audio_queue, self.transcripts, self.frame_slot, self.controls):
            if ch is not None:
                out[f"dropped_{ch.name}"] = ch.stats().dropped
        return out

    def run(self) -> int:
        self._install_signal_handlers()
        try:
            self.start()
            self.loop()
        finally:
            hung = self.shutdown()
        return 1 if hung else 0
