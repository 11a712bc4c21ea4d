"""The composition root: builds the stages a show asks for, joins them with channels, runs
the main loop, and owns shutdown. The only module that knows every room.

Threads: camera, microphone, speech and generator workers, and the OSC server, each feeding
channels. The main thread owns pygame and the show state (control/show_control.py): it applies
controls, passes what was heard through the words pipeline (speech/words.py) to the show
control, pushes status, and presents the newest frame at the display's rate. The app is the
show control's `ShowHost` (control/host.py).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import web_bridge
from .control.host import RuntimeStatus, Screen, ScreenSettings, Sender
from .control.retention import Janitor, RetentionPolicy
from .control.show_control import ShowControl, ShowState
from .control.state_store import SavedState, StateStore, restore, snapshot
from .control.streams import StreamControl
from .core.channels import DropOldestQueue, LatestSlot
from .core.counters import EventCounters
from .core.events import EventLog, FloodSummary
from .core.faults import DISPLAY_HANG_S, FaultInjector
from .core.messages import (
    AudioChunk,
    CameraFrame,
    CaptionRetraction,
    Control,
    GeneratedFrame,
    GenerationParams,
    Prompt,
    Scene,
    Transcript,
)
from .core.native_stderr import quiet_native_stderr
from .core.service import ServiceNotifier
from .core.streams import StreamSlots
from .core.supervisor import Supervisor
from .core.worker import Worker, stop_all
from .generation.choice import params_from_config
from .show import Show, ShowError, load_show
from .speech.words import WordsPipeline
from .web.bridge import WEB_SENDER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the command line may change about a show for one run."""

    seconds: float | None = None
    record: Path | None = None
    record_fps: float = 30.0  # half of a 60 Hz display: encoding 720p at 60 fps takes most of a core
    log_path: Path | None = None
    started_mono: float | None = None  # when the process started, for start-up timing
    web_port: int | None = None  # serve the operator's page on this port (overrides [web])
    # The saved show state (control/state_store.py): one file per show in `state_dir`, or every
    # show in `state_file` (--state PATH). Neither: nothing is read or written (trial runs, tests).
    state_dir: Path | None = None
    state_file: Path | None = None
    ndi_name: str | None = None  # --ndi NAME: also send the screen as the NDI source NAME
    faults: bool = False  # --faults: the soak harness may arm faults (/jadong/fault) and reads heartbeats


class App:
    def __init__(self, show: Show, options: RunOptions = RunOptions()) -> None:
        self.show = show
        self.options = options
        self.stop_event = threading.Event()
        self.counters = EventCounters()  # for /metrics and the operator's page
        # The soak harness's injected faults and the heartbeats it reads (core/faults.py,
        # core/soak_probe.py); inert without --faults.
        self.faults = FaultInjector(enabled=options.faults)
        self.events = EventLog(options.log_path, observer=self.counters.count, faults=self.faults)
        self.probe = self._soak_probe() if options.faults else None
        self.janitor: Janitor | None = None  # deletes what [privacy] does not keep (start)
        self.started_t = time.monotonic()
        # A fader streaming at 60 Hz for weeks would write millions of lines: the first 20
        # messages in each 10 s are logged, the rest summarised per address.
        self._osc_log = FloodSummary(self.events, "osc", burst=20, window_s=10.0)
        self._osc_errors = FloodSummary(self.events, "error", burst=20, window_s=1.0)
        # A prompt storm over OSC (a script gone wrong) is summarised too; what reached the
        # screen stays traceable through the "presented" events, which are never summarised.
        self._osc_prompts = FloodSummary(self.events, "prompt", burst=20, window_s=10.0)
        self.controls: DropOldestQueue[Control] = DropOldestQueue("controls", maxsize=4096)
        self.osc = None
        self.presenter = None  # output 1's presenter (display/presenter.py)
        self.outputs: Any = None  # every output (display/outputs.py)
        self.looks: Any = None  # display/still.py LookLayer: attract's and the closed screen's looks
        self.web: Any = None  # the web server (web/server.py), when the operator's page is on
        self.web_bridge: Any = None
        self._web_published_t = 0.0
        self._shows_list = web_bridge.ShowsList()
        self._screen_settings = ScreenSettings()  # the screen until the window opens
        self._pending_show: tuple[Show, tuple[str, int] | None] | None = None
        self._signal: int | None = None
        self._status_targets: list[tuple[str, int]] = []
        self._hud_refresh_t = 0.0
        self._recordings_stopped: set[str] = set()  # why each stopped recording stopped, reported once
        self.supervisor = Supervisor(self.stage_of, self.restart_stage, self.on_event)
        self._last_status_t = 0.0
        self.service: ServiceNotifier | None = None  # systemd's notify socket, when it gave one (start)
        self.state_store = (StateStore(options.state_dir, options.state_file, on_event=self.on_event,
                                       faults=self.faults)
                            if options.state_dir is not None or options.state_file is not None else None)
        self._saved: SavedState | None = None  # the show state last handed to the store
        self._state_key = ""  # the running show's name in the store (set when its state is restored)
        self._init_show(show)

    def _init_show(self, show: Show) -> None:
        """Channels and state for one show; a show loaded over OSC starts here again."""
        self.show = show
        self._apply_privacy(show)
        # Sampled state in latest-value slots, streams and events in bounded queues.
        self.camera_slot: LatestSlot[CameraFrame] | None = LatestSlot("camera")
        self.audio_queue: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", maxsize=1500)  # 30 s of 20 ms
        self.transcripts: DropOldestQueue[Transcript | CaptionRetraction] = DropOldestQueue("transcripts", maxsize=16)
        self.frame_slot: LatestSlot[GeneratedFrame] = LatestSlot("frames")
        self.scene_slot: LatestSlot[Scene] = LatestSlot("scene")
        self._scene_version = 0
        self._scene_reported: tuple[bool, int] | None = None  # (presence, people) last written as an event
        self.workers: list[Worker] = []
        self.generator_worker = None
        self.speech_worker = None
        self.vision_worker = None
        self.words = WordsPipeline(None, self.on_event)  # its moderator is set by _build_speech
        self.control = ShowControl(show, self, params_from_config(show.generator), faults=self.faults)
        self.prompt_slot: LatestSlot[Prompt] = LatestSlot("prompt", self.control.state.prompt)
        # What [hours] and [attract] (control/unattended.py) last had applied (_apply_unattended).
        self._attract_prompt: Prompt | None = None
        self._prompt_put: Prompt | None = None  # the show's prompt last put in the slot (publish_prompt)
        self._look: Any = None
        self._looks_loaded = False
        self._ear_open = self.control.unattended.open  # a show that starts closed never opens its ear
        self.params_slot: LatestSlot[GenerationParams] = LatestSlot("params", self.control.state.params)
        # Each stream's state and slots ([[streams]]); stream 1's slots are the three above.
        self.streams = StreamControl(show, self.control, StreamSlots(1, "", self.prompt_slot, self.params_slot,
                                                                     self.frame_slot), on_event=self.on_event)

    def _apply_privacy(self, show: Show) -> None:
        """The show's [privacy]: from the next event-log line on, and the janitor's next pass."""
        cfg = show.privacy
        self.events.set_policy(keep_words=cfg.keep_words, max_file_bytes=int(cfg.log_file_mb * 1_000_000))
        if self.janitor is not None:
            self.janitor.set_policy(RetentionPolicy.from_config(cfg))

    @property
    def state(self) -> ShowState:
        return self.control.state

    # --- events -------------------------------------------------------------------------
    def on_event(self, event: str, **fields: Any) -> None:
        """The event hook every stage calls (from its own thread)."""
        if event == "osc":
            self._osc_log.write(str(fields.get("address", "")), **fields)
            return
        if event == "error" and fields.get("source") in ("osc", "control"):
            fields.setdefault("stage", "osc")
            self._osc_errors.write(str(fields.get("address", "")), **fields)
            return
        self.events.write(event, **fields)

    def on_worker_error(self, stage: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.events.write("error", stage=stage, reason=reason)
        self.control.state.last_error = f"{stage}: {reason}"[:200]  # one assignment: safe from any thread

    def _soak_probe(self) -> Any:
        """--faults: heartbeats for the soak harness and the generator's recovery evidence."""
        from .core.soak_probe import SoakProbe
        from .generation.frame_check import frame_problem

        def primary() -> str | None:
            gw = self.generator_worker
            return gw.primary.name if gw is not None else None

        return SoakProbe(self.faults, self.events, self, frame_problem, primary)

    # --- building -----------------------------------------------------------------------
    def _build_camera(self) -> None:
        from .inputs.camera import CameraWorker, open_frame_source

        source = open_frame_source(self.show.camera)
        if source is None:
            self.camera_slot = None
            return
        self.workers.append(CameraWorker(source, self.camera_slot, retry_s=self.show.camera.retry_s,
                                         on_error=self.on_worker_error, on_event=self.on_event, faults=self.faults))

    def _build_vision(self) -> None:
        if not self.show.vision.enabled:
            return
        if self.camera_slot is None:
            reason = "[vision] is enabled but the show has no camera (camera.source = \"none\"): no scene words"
            self.events.write("error", stage="vision", reason=reason)
            log.warning("%s", reason)
            return
        from .vision.worker import VisionWorker

        self.vision_worker = VisionWorker(self.camera_slot, self.scene_slot, self.show.vision,
                                          on_error=self.on_worker_error, on_event=self.on_event)
        self.workers.append(self.vision_worker)

    def _build_speech(self) -> None:
        if not self.show.speech.enabled:
            return
        from .inputs.microphone import MicWorker, open_audio_source
        from .inputs.wav import AudioUnavailable
        from .speech.moderation import ModerationError, Moderator

        try:
            # Built before the microphone: words that cannot be checked must not be painted.
            self.words.moderator = Moderator(self.show.moderation)
        except ModerationError as exc:
            self.events.write("error", stage="moderation", reason=str(exc))
            log.warning("no speech this run: %s", exc)
            return
        try:
            source = open_audio_source(self.show.microphone)
        except AudioUnavailable as exc:
            self.events.write("error", stage="microphone", reason=str(exc))
            log.warning("no speech this run: %s", exc)
            return
        if source is None:
            return
        from .speech.endpointing import Endpointer
        from .speech.transcribe import load_transcriber
        from .speech.worker import SpeechWorker

        try:
            transcriber = load_transcriber(self.show.speech)
        except Exception as exc:  # a wrong engine name must not stop the pictures
            self.events.write("error", stage="speech", reason=str(exc))
            return
        self.workers.append(MicWorker(source, self.audio_queue, on_error=self.on_worker_error, faults=self.faults))
        self.speech_worker = SpeechWorker(self.audio_queue, transcriber, Endpointer(self.show.speech),
                                          self.transcripts, on_error=self.on_worker_error, on_event=self.on_event,
                                          cfg=self.show.speech)
        self.workers.append(self.speech_worker)
        self.set_listening(self.state.listening)

    def _build_generator(self) -> None:
        from .generation.choice import choose_generator
        from .generation.preview import PreviewGenerator
        from .generation.worker import GeneratorWorker

        gen_cfg = self.show.generator
        generator, reason = choose_generator(gen_cfg)
        fallback = generator if isinstance(generator, PreviewGenerator) else PreviewGenerator(
            gen_cfg.width, gen_cfg.height, reason=f"Preview while {gen_cfg.model} loads")
        streams = len(self.streams.slots)
        if streams > 1 and hasattr(generator, "prepare_streams"):
            # The batch of every stream is compiled at load; smaller batches (streams whose
            # inputs did not change) run as CUDA graphs captured when first needed.
            generator.prepare_streams = (1, streams)
        self.generator_worker = GeneratorWorker(
            generator, fallback, self.prompt_slot, self.params_slot, self.camera_slot, self.frame_slot,
            gen_cfg, on_error=self.on_worker_error, on_event=self.on_event, scene=self.scene_slot,
            may_mask=any(cue.mask not in (None, "off") for cue in self.show.cues), safety=self.show.safety,
            faults=self.faults, streams=self.streams.slots)
        self.workers.append(self.generator_worker)

    def _build_osc(self) -> None:
        if not self.show.osc.enabled:
            return
        from .control.osc import OscServer

        self.osc = OscServer(self.show.osc, self.controls, on_event=self.on_event)
        try:
            self.osc.start()
        except OSError as exc:
            self.events.write("error", stage="osc", reason=str(exc))
            log.error("OSC disabled: %s", exc)
            self.osc = None

    def _build_web(self) -> None:
        """The operator's page, /healthz and /metrics: one server for the whole run (it outlives
        show switches; the page reconnects)."""
        cfg = self.show.web
        if not cfg.enabled and self.options.web_port is None:
            return
        from .web.bridge import SnapshotBridge
        from .web.server import WebError, WebServer

        bridge = SnapshotBridge(self.controls)
        server = WebServer(bridge, cfg, port=self.options.web_port, on_event=self.on_event)
        try:
            server.start()
        except WebError as exc:
            self.events.write("error", stage="web", reason=str(exc))
            log.error("operator's page disabled: %s", exc)
            return
        self.web, self.web_bridge = server, bridge
        self._publish_web(time.monotonic(), force=True)
        log.info("operator's page on %s", server.url)

    def _publish_web(self, now: float, force: bool = False) -> None:
        bridge = self.web_bridge
        if bridge is None or (not force and now - self._web_published_t < web_bridge.PUBLISH_EVERY_S):
            return
        self._web_published_t = now
        bridge.publish_status(web_bridge.status(self, now, self._shows_list))
        bridge.publish_health(*web_bridge.health(self))
        bridge.publish_metrics(web_bridge.metrics(self, now))
        frame = self.current_frame()
        bridge.publish_preview(frame.image if frame is not None else None)

    def _build_display(self) -> None:
        from .display.outputs import build_outputs

        # [[outputs]]: several screens, NDI sources and recordings; without, the one screen [display] says.
        self.outputs = build_outputs(self.show, self.show.show.title or self.show.show.name,
                                     record=self.options.record, record_fps=self.options.record_fps,
                                     on_event=self.on_event, on_error=self.on_worker_error)
        self.presenter = self.outputs.primary
        # SDL prints "XDG_RUNTIME_DIR is invalid" on a machine without a desktop session: it
        # would read like Jadong's own error. SDL's real failures are raised, not printed.
        with quiet_native_stderr():
            self.outputs.open()
        self.outputs.set_idle(self._serve_controls_until)
        from .display.still import LookLayer

        self.looks = LookLayer(self.presenter.size, self.show.display.caption_size,
                               on_error=lambda reason: self.on_event("error", stage="attract", reason=reason))
        self._build_ndi_out()
        if self.options.record is not None and self.presenter.recording_error:
            self.events.write("error", stage="recording", reason=self.presenter.recording_error)
            self.state.last_error = f"not recording: {self.presenter.recording_error}"
        if self.presenter.mode != self.show.display.mode:
            reason = self.presenter.mode_note or "no display available; running headless"
            self.events.write("display", mode=self.presenter.mode, asked=self.show.display.mode, reason=reason)
        if not self.outputs.seen and self.options.record is None:
            until = (f"stops after {self.options.seconds:g} s" if self.options.seconds is not None
                     else "runs until Ctrl-C or /jadong/quit")
            log.warning("no window: this run shows nothing and %s; add --record show.mp4 to watch it "
                        "afterwards, --seconds N to stop it, or run it where a screen is (DISPLAY=:0)", until)

    def _build_ndi_out(self) -> None:
        """--ndi NAME: what the screen presents, caption included, also as an NDI source (at the
        display's rate and size). Where NDI cannot run, the reason is logged and the show runs."""
        if not self.options.ndi_name or self.presenter is None:
            return
        from .display.ndi_out import NdiOutputSettings, open_ndi_output

        settings = NdiOutputSettings(self.options.ndi_name, fps=self.show.display.fps)
        sink = open_ndi_output(settings, on_event=self.on_event, on_error=self.on_worker_error)
        if sink is None:
            self.state.last_error = f"NDI output {settings.name!r} is off (see the event log)"
        else:
            self.presenter.add_sink(sink)

    @staticmethod
    def stage_of(worker: Worker) -> str:
        name = worker.name.split(":")[0].split("-")[0].split(" ")[0]
        # The microphone is rebuilt with the speech stage that reads it.
        return {"microphone": "speech", "speech": "speech", "camera": "camera"}.get(name, name)

    def restart_stage(self, stage: str) -> None:
        """Build a stage afresh (the supervisor's remedy for a died or stalled worker). The
        channels stay, so the other stages and the screen never notice more than a pause."""
        builders = {"camera": self._build_camera, "speech": self._build_speech, "generator": self._build_generator,
                    "vision": self._build_vision}
        old = [w for w in self.workers if self.stage_of(w) == stage]
        kept = [w for w in self.workers if w not in old]
        self.workers = list(kept)
        try:
            builders[stage]()
        except Exception:
            self.workers = kept + old  # nothing replaced: the old ones stay watched, the next check retries
            raise
        for w in old:
            w.stop()  # not joined: a stalled thread may never return; it is a daemon
        for w in self.workers:
            if w not in kept:
                w.start()

    def _build_inputs_and_generator(self) -> None:
        self._build_camera()
        self._build_vision()
        self._build_generator()
        self._build_speech()
        for w in self.workers:
            w.start()

    # --- the show control's host (main thread) ------------------------------------------------
    @property
    def screen(self) -> Screen:
        return self.outputs if self.outputs is not None else self._screen_settings

    def publish_prompt(self, prompt: Prompt) -> None:
        fields = {"text": prompt.text, "source": prompt.source, "negative": prompt.negative}
        if self.control.unattended.attract_prompt is None:
            self.streams.show_prompt(prompt)  # every stream, through its own template (control/streams.py)
            self._prompt_put = prompt
        else:  # attract paints its own: the show's prompt waits in the show state until attract ends
            fields["held"] = "attract"
        if prompt.approved_by:
            fields["approved_by"] = prompt.approved_by
        if prompt.source == "osc":
            self._osc_prompts.write(prompt.source, **fields)
        else:
            self.events.write("prompt", **fields)

    def publish_params(self, params: GenerationParams) -> None:
        self.streams.show_params(params)

    def set_listening(self, on: bool) -> None:
        if self.speech_worker is not None:
            self.speech_worker.set_listening(on and self._ear_open)  # closed ([hours]): nothing is transcribed

    def current_frame(self) -> GeneratedFrame | None:
        return self.presenter.current_frame if self.presenter is not None else self.frame_slot.get()

    def reply_target(self, sender: Sender) -> Sender:
        return self.osc.reply_target(sender) if self.osc is not None else sender

    def reply(self, sender: Sender, address: str, *args: Any) -> None:
        if sender == WEB_SENDER:
            return  # the page waits for its control's outcome instead of a datagram
        if self.osc is not None:
            self.osc.reply(self.reply_target(sender), address, *args)

    def send_status(self, sender: Sender) -> None:
        if sender == WEB_SENDER:
            return  # the page reads /api/status
        if self.osc is not None:
            for bundle in (self.control.status_values(), *self.streams.status_bundles()):
                self.osc.send_bundle(self.reply_target(sender), bundle)

    def runtime_status(self) -> RuntimeStatus:
        gw = self.generator_worker
        generator = f"{gw.active_name} {gw.active_model}".strip() if gw is not None else ""
        return RuntimeStatus(rates=self.stage_rates(), generator=generator, dropped=sum(self.drop_counts().values()))

    def request_quit(self, source: str, sender: Sender | None = None) -> None:
        self.events.write("quit", source=source, sender=sender)
        self.stop_event.set()

    def request_show(self, path: Path, sender: Sender | None = None) -> None:
        """Load another show between two frames; a broken one is refused and nothing changes."""
        self._pending_show = (load_show(path), sender)  # ShowError reaches the sender as /jadong/error

    def _switch_show(self, show: Show, sender: tuple[str, int] | None = None) -> None:
        """The screen, the recording and the OSC server carry over; the rest is the new show's.
        If the new show cannot be built, the old one is built again and the sender is told."""
        self.control.discard_pending("show switch")  # words waiting for a person go, each with an event
        self._save_state()  # the leaving show's last change, even one made in this same batch of controls
        old_show, old_workers, blackout = self.show, self.workers, self.state.blackout
        for w in old_workers:
            w.stop()
        # Joined off the main thread: the picture keeps moving while a camera closes.
        threading.Thread(target=self._join_retired, args=(old_workers,), name="retire", daemon=True).start()
        try:
            self._start_show(show)
        except Exception as exc:
            reason = (f"show {show.show.name!r} could not start ({type(exc).__name__}: {exc}); "
                      f"back to {old_show.show.name!r}")
            log.exception("show switch failed")
            self.on_event("error", stage="show", reason=reason)
            if sender is not None:
                self.reply(sender, "/jadong/error", "/jadong/show", reason)
            stop_all(self.workers, timeout=2.0)
            try:
                self._start_show(old_show)
            except Exception as again:  # the screen holds its last frame; staff see why
                log.exception("restarting the previous show failed")
                self.on_event("error", stage="show", reason=f"the previous show could not start again either: {again}")
        self.state.blackout = blackout  # the screen still shows what the performer set

    def _start_show(self, show: Show) -> None:
        presenter = self.presenter
        show = show.model_copy(deep=True)
        if presenter is not None:
            show.display.mode = presenter.cfg.mode
            self.outputs.take_display(show.display)  # the outputs carry over, with the new show's look
        self._init_show(show)
        self._restore_state(blackout=False)  # the room's blackout carries over a switch (_switch_show)
        kept = self.outputs.kept_for(show) if self.outputs is not None else ""
        if kept:  # windows, NDI sources and recordings stay open: the show's own [[outputs]] wait for a start
            log.warning("show %s: %s", show.show.name, kept)
            self.events.write("show", name=show.show.name, path=show.path, outputs=kept)
        else:
            self.events.write("show", name=show.show.name, path=show.path)
        self.publish_prompt(self.state.prompt)
        self._resolve_status_targets()
        self._build_inputs_and_generator()

    def _join_retired(self, workers: list[Worker]) -> None:
        hung = stop_all(workers, timeout=10.0)
        if hung:
            self.on_event("error", stage="show", reason=f"threads of the previous show did not stop: {hung}")

    # --- speech -------------------------------------------------------------------------------
    def handle_transcript(self, message: Transcript | CaptionRetraction) -> None:
        """Main thread: what the speech stage heard, through the words pipeline, onto the
        caption and into the prompt."""
        if not self.control.unattended.open:
            return  # closed ([hours]): words heard as it closed are not kept or painted
        if isinstance(message, Transcript):
            self.control.unattended.heard()  # a visitor speaks: attract ends
        heard = self.words.take(message, self.state.caption_text)
        if heard.caption is not None:
            self.control.set_caption(heard.caption)
        if heard.words:
            self.state.last_transcript = heard.transcript
            self.control.from_speech(heard.words, heard.caption or heard.words)

    # --- opening hours and attract mode (control/unattended.py) ----------------------------
    def _apply_unattended(self) -> None:
        """Main thread, every frame: what [hours] and [attract] decided reaches the generator
        (resting while closed or during a clip or still), the microphone (deaf while closed), the
        prompt slot (attract's prompts, then the show's own again) and the screen's look."""
        unattended = self.control.unattended
        if unattended.hours.open is None:  # the first frame already knows whether the show is open
            unattended.tick(present=bool(self.state.seen and self.state.seen.presence))
        gw = self.generator_worker
        if gw is not None and gw.paused.is_set() != unattended.generator_paused:
            (gw.paused.set if unattended.generator_paused else gw.paused.clear)()
        if unattended.open != self._ear_open:
            self._ear_open = unattended.open
            self.set_listening(self.state.listening)
        prompt = unattended.attract_prompt
        if prompt is not self._attract_prompt:
            self._attract_prompt = prompt
            if prompt is not None:  # every stream invites people in (stream 1's slot is prompt_slot)
                self._prompt_put = None
                for slots in self.streams.slots:
                    slots.prompt.put(prompt)
                self.events.write("prompt", text=prompt.text, source=prompt.source, negative=prompt.negative)
            else:
                # The words that ended attract (a visitor's, an operator's) are in the slot already;
                # otherwise the show's prompt, never changed by attract, blends back in.
                if self._prompt_put is not self.state.prompt:
                    back = replace(self.state.prompt, t=time.monotonic())
                    self.streams.show_prompt(back)
                    self.events.write("prompt", text=back.text, source=back.source, negative=back.negative)
                self.streams.republish(time.monotonic())  # streams those words did not reach
        if self.looks is None:
            return
        if not self._looks_loaded:  # stills read and captions drawn once per show, before they are needed
            self._looks_loaded = True
            attract, hours = self.show.attract, self.show.hours
            captions = [attract.caption if attract.enabled else "", hours.caption]
            if attract.enabled and attract.behaviour == "still":
                for reason in self.looks.preload([attract.image], []).values():
                    self.events.write("error", stage="attract", reason=reason)
            if hours.closed == "still":
                for reason in self.looks.preload([hours.image], []).values():
                    self.events.write("error", stage="hours", reason=reason)
            self.looks.preload([], captions)
        look = unattended.look
        if look is not self._look:
            self._look = look
            self.looks.set_look(look.kind, look.caption, look.path, look.level, look.fade_s)

    # --- the scene ---------------------------------------------------------------------------
    def take_scene(self, now: float | None = None) -> None:
        """Main thread: the vision stage's newest scene into the show control (scene words,
        at the show's pace), the listening gate of a `listen = "presence"` show, and a `scene`
        event when presence or the people count changes (never per frame; counts and words
        only: nothing of the picture is kept)."""
        scene, version = self.scene_slot.get_with_version()
        if scene is None:
            return
        if version != self._scene_version:
            self._scene_version = version
            if self.outputs is not None:
                gen = self.show.generator
                whole = {s.index for s in self.streams.slots if s.crop.full}  # a crop does not match the outline
                self.outputs.set_silhouette(scene.silhouette, (gen.width, gen.height), whole)
            if self.show.speech.listen == "presence" and scene.presence != self.state.listening:
                self.control.set_listening(scene.presence)
            key = (scene.presence, scene.people)
            if key != self._scene_reported:
                self._scene_reported = key
                self.events.write("scene", presence=scene.presence, people=scene.people, colours=list(scene.colours),
                                  light=scene.light, motion=scene.motion,
                                  where=[p.where for p in scene.persons])
        self.control.from_scene(scene, now)
        self.streams.refresh_scene()

    # --- the saved show state (control/state_store.py) ------------------------------------------
    def _restore_state(self, blackout: bool = True) -> None:
        """The show just built takes up its saved state, if the store has one for it."""
        store = self.state_store
        if store is None:
            return
        # Kept under the show file's name: what `run.py NAME` and /jadong/show NAME choose.
        self._state_key = Path(self.show.path).stem if self.show.path else self.show.show.name
        saved = store.load(snapshot(self._state_key, self.control, self.streams))
        if saved is not None:
            try:
                notes = restore(self.control, saved, time.monotonic(), blackout=blackout, streams=self.streams)
            except Exception as exc:  # a bug here must cost the saved state, never the show
                log.exception("restoring the saved state of %s failed", self._state_key)
                self.events.write("error", stage="state", reason=f"{store.path_for(self._state_key)}: could not be "
                                  f"restored ({type(exc).__name__}: {exc}); the show goes on from where that left it")
            else:
                for note in notes:
                    log.warning("saved state of %s: %s", self._state_key, note)
                self.events.write("state", action="restored", path=store.path_for(self._state_key),
                                  cue=self.state.cue_index + 1, cue_name=self.control.cue_name(), notes=notes)
        self._saved = snapshot(self._state_key, self.control, self.streams)

    def _save_state(self) -> None:
        """Every frame: a changed state goes to the store, whose writer coalesces (main thread;
        the snapshot and compare take microseconds, the write happens elsewhere)."""
        if self.state_store is None or not self._state_key:
            return
        current = snapshot(self._state_key, self.control, self.streams)
        if current != self._saved:
            self._saved = current
            self.state_store.offer(current)

    def _service_status(self) -> str:
        """systemd's one-line STATUS (`systemctl status jadong`): show, cue, generator, display
        rate, blackout, last error."""
        gw = self.generator_worker
        generator = f"{gw.active_name} {gw.active_model}".strip() if gw is not None else "no generator"
        cue = self.control.cue_name()
        parts = [f"show {self.show.show.name}", f"cue {self.state.cue_index + 1} {cue}" if cue else "no cue",
                 generator, f"{self.presenter.fps if self.presenter is not None else 0.0:.0f} fps"]
        if self.state.blackout:
            parts.append("blackout")
        if self.state.last_error:
            parts.append(f"last error: {self.state.last_error}")
        return " · ".join(parts)

    # --- status ----------------------------------------------------------------------------
    def stage_rates(self) -> dict[str, float]:
        rates = {self.stage_of(w): w.status().rate for w in self.workers}
        if self.presenter is not None:
            rates["display"] = self.presenter.fps
        return rates

    def channels(self) -> list:
        return [c for c in (self.camera_slot, self.audio_queue, self.transcripts, self.frame_slot, self.controls,
                            self.scene_slot, *self.streams.channels()) if c is not None]

    def drop_counts(self) -> dict[str, int]:
        return {ch.name: ch.stats().dropped for ch in self.channels()}

    def hud_lines(self) -> list[str]:
        lines = []
        for w in self.workers:
            st = w.status()
            err = f"  errors {st.errors}" if st.errors else ""
            lines.append(f"{st.name:<10} {st.rate:5.1f}/s{err}")
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in self.drop_counts().items()))
        gw = self.generator_worker
        if gw is not None:
            model = f"model {gw.active_model}" if gw.active_model else "no model (preview)"
            lines.append(f"generator {gw.active_name}  {model}")
        cue = self.control.cue_name()
        if cue:
            left = self.control.time_left()
            timed = f" ({left:.0f} s left)" if left is not None else ""
            lines.append(f"cue {self.state.cue_index + 1}: {cue}{timed}")
        if self.state.last_error:
            lines.append(f"last error: {self.state.last_error[:80]}")
        return lines

    def _resolve_status_targets(self) -> None:
        """Host names in status_targets are looked up once, here, never on the display's path
        (a slow resolver would freeze the picture)."""
        self._status_targets = []
        for host, port in self.show.osc.status_addresses():
            try:
                info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
                self._status_targets.append((info[0][4][0], port))
            except OSError as exc:
                self.on_event("error", stage="osc", reason=f"status target {host}:{port} cannot be resolved: {exc}")

    def _push_status(self, now: float) -> None:
        cfg = self.show.osc
        if self.osc is None or not self._status_targets or now - self._last_status_t < 1.0 / cfg.status_hz:
            return
        self._last_status_t = now
        bundles = [self.control.status_values(), *self.streams.status_bundles()]  # one per stream after the show's
        for target in self._status_targets:
            for values in bundles:
                self.osc.send_bundle(target, values)

    # --- running ---------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, _frame):
            # Only flags: the handler runs between two bytecodes of the main thread, which may
            # hold the event log's lock at that moment; the event is written after the loop.
            self._signal = signum
            self.stop_event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def start(self) -> None:
        self.events.write("start", show=self.show.show.name, path=self.show.path,
                          process_start_mono=self.options.started_mono)
        self._build_display()
        self.service = ServiceNotifier.from_environment(
            on_error=lambda reason: self.events.write("error", stage="service", reason=reason))
        self._restore_state()  # after the window opens (the screen's switches), before the generator starts
        self._resolve_status_targets()
        self._build_inputs_and_generator()
        self._build_osc()
        self._build_web()
        self.janitor = Janitor(self.events, self.control.captures.folder,
                               RetentionPolicy.from_config(self.show.privacy), on_event=self.on_event)
        self.janitor.start()
        self.events.write("prompt", text=self.state.prompt.text, source=self.state.prompt.source,
                          negative=self.state.prompt.negative)

    def _serve_controls_until(self, seconds: float) -> None:
        """The display loop's wait for its next frame: controls arriving meanwhile are applied
        as they come (a cue reaches the generator in well under a millisecond), still on the
        main thread, still in order."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            control = self.controls.get(timeout=remaining)
            if control is None:
                return
            self.control.handle(control)  # never raises: a bad control is refused, the show goes on

    def _apply_controls(self) -> None:
        for control in self.controls.drain():
            self.control.handle(control)  # never raises: a bad control is refused, the show goes on
        if self._pending_show is not None:
            (show, sender), self._pending_show = self._pending_show, None
            self._switch_show(show, sender)

    def loop(self) -> None:
        assert self.presenter is not None
        t0 = time.monotonic()
        first_frame_logged = False
        last_label = None
        shown = None
        while not self.stop_event.is_set():
            for action in self.outputs.poll_events():  # keys in whichever window has focus
                if action == "quit":
                    self.request_quit("keyboard")
                elif action in ("go", "back"):  # space or right arrow, left arrow: the cues
                    self.control.keyboard(action)
                elif action == "capture":  # p: the picture on screen, as /jadong/capture
                    self.control.capture_key()
            self._apply_controls()
            for transcript in self.transcripts.drain():
                self.handle_transcript(transcript)
            self.take_scene()
            self._apply_unattended()

            frame = self.frame_slot.get()
            # The attract and closed looks stand in for the generated frames (display/still.py).
            on_screen = self.looks.frame(frame, size=self.presenter.size) if self.looks is not None else frame
            frames = {**self.streams.frames(), 1: on_screen}  # each stream's newest, for the outputs showing it
            if on_screen is not frame:  # a look (attract, closed) stands in on every output
                frames = dict.fromkeys(frames, on_screen)
            if not self.state.frozen or on_screen is not frame:
                self.outputs.show_frames(frames)
            gw = self.generator_worker
            if gw is not None and gw.label != last_label:
                last_label = gw.label
                self.outputs.set_label(gw.label)
            if self.outputs.hud_visible and time.monotonic() - self._hud_refresh_t >= 0.5:
                self._hud_refresh_t = time.monotonic()
                self.outputs.set_hud(self.hud_lines())
            if self.faults.take("display_hang"):  # --faults only: the loop stuck as in a hung driver
                time.sleep(DISPLAY_HANG_S)
            self.outputs.render()  # every output that is due, then one wait (serving controls)
            now = time.monotonic()
            if self.probe is not None:
                self.probe.presented(frame, now)
            if self.service is not None and self.presenter.first_frame_t is not None:
                self.service.presented(now, self._service_status)  # READY, then WATCHDOG while frames come
            self.control.tick(now)  # [curation]: words nobody decided on get the show's on_timeout
            self._save_state()
            self._push_status(now)
            self._publish_web(now)
            self._report_recording_stop()
            problems_before = self.supervisor.problems
            problems = self.supervisor.check(self.workers, now)
            if problems and problems != problems_before:
                self.state.last_error = "; ".join(f"{p.worker} {p.kind}" for p in problems)
            self._osc_log.tick()
            self._osc_errors.tick()
            self._osc_prompts.tick()
            self.events.tick()  # a log that lost lines to a full disk tries again (one read otherwise)

            first = frame if frame is not None else on_screen  # a show that starts closed shows its look first
            if first is not None and not first_frame_logged and self.presenter.first_frame_t is not None:
                first_frame_logged = True
                start = self.options.started_mono or t0
                self.events.write("frame", first=True, generator=first.generator,
                                  seconds_since_start=round(self.presenter.first_frame_t - start, 3))
            # A new prompt on screen, or the same prompt from another generator (e.g. the model
            # finished loading and took over from the preview).
            generated_on_screen = self.looks is None or self.looks.shows_generated  # not a closed or attract look
            if (frame is not None and not self.state.frozen and generated_on_screen
                    and (frame.prompt.t, frame.generator) != shown):
                shown = (frame.prompt.t, frame.generator)
                self.events.write("presented", prompt=frame.prompt.text, source=frame.prompt.source,
                                  generator=frame.generator, latency_s=round(now - frame.prompt.t, 3))
            if self.options.seconds is not None and now - t0 >= self.options.seconds:
                self.events.write("quit", source="timer", seconds=self.options.seconds)
                break

    def _report_recording_stop(self) -> None:
        """A recording the recorder had to stop (the disk filling up; --record or a record
        output): once each, to the event log and to /jadong/status/error, where staff look."""
        for reason in self.outputs.stopped_recordings() if self.outputs is not None else []:
            if reason not in self._recordings_stopped:
                self._recordings_stopped.add(reason)
                self.events.write("error", stage="recording", reason=reason)
                self.state.last_error = reason

    def shutdown(self) -> list[str]:
        if self.service is not None:  # from here systemd waits TimeoutStopSec, its watchdog is off
            self.service.stopping("stopping")
        if self.state_store is not None:  # first: a worker that will not stop must not cost the last change
            self._save_state()
            if not self.state_store.close(timeout=5.0):
                log.warning("the show state's last change could not be saved (see the state error above)")
        if self.web_bridge is not None:
            self.web_bridge.close()  # the page hears "stopping" at once rather than waiting for answers
        hung = stop_all(self.workers, timeout=8.0)
        if self.osc is not None:
            self.osc.stop()
        if self.web is not None:
            self.web.stop()
        self._osc_log.flush()
        self._osc_errors.flush()
        self._osc_prompts.flush()
        if not self.control.captures.flush(timeout=5.0):  # captures taken just before the end are kept
            self.events.write("error", stage="capture", reason="captures still being written at shutdown were lost")
        if self.looks is not None:
            self.looks.close()
        if self.outputs is not None:
            self.outputs.close()
        self.events.write("stop", hung=hung, **{f"dropped_{k}": v for k, v in self.drop_counts().items()})
        if self.service is not None:
            self.service.close()
        if self.janitor is not None:
            self.janitor.stop()
        if self.probe is not None:
            self.probe.close()
        self.events.close()
        return hung

    def run(self) -> int:
        self._install_signal_handlers()
        try:
            self.start()
            self.loop()
        finally:
            if self._signal is not None:
                self.events.write("signal", signal=signal.Signals(self._signal).name)
            hung = self.shutdown()
        return 1 if hung else 0


__all__ = ["App", "RunOptions", "ShowError"]
