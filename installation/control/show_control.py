"""The show state, and what each control address does to it.

Owned by the main thread: the OSC server only validates and enqueues, so every change to the
show happens here, in order, between two presented frames. Each value address in the table
(addresses.py) has a setter and a getter here; a Control with `query=True` is answered with the
getter's value (a test checks every address has what its kind needs). What a change drives
(the generator's inputs, the screen, replies, the event log) is reached through `ShowHost`
(host.py), never through the app's attributes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from installation.core.colour_names import colour_name
from installation.core.faults import NO_FAULTS, FaultInjector
from installation.core.messages import Control, ControlOutcome, GenerationParams, Prompt, Scene
from installation.core.text import clean_words
from installation.show import (
    MAX_PROMPT_CHARS,
    PROJECT_ROOT,
    SCENE_WORDS,
    SHOWS_DIR,
    Cue,
    PromptConfig,
    Show,
    ShowError,
    template_placeholders,
)

from .addresses import ERROR_ADDRESS, STATUS_ADDRESSES, STATUS_TEXT_MAX_BYTES, fit_utf8, shorten
from .capture import CAPTURE_KEY, CaptureError, Captures, Trigger
from .curation import (
    APPROVE,
    DISCARDED,
    EDIT,
    OVERFLOW,
    PAINTING,
    REJECT,
    TIMEOUT_ACCEPT,
    TIMEOUT_DROP,
    CurationQueue,
    PendingWords,
    UnknownWords,
    who,
)
from .host import Sender, ShowHost
from .scene_words import SceneWords, fill_template, scene_words
from .storyboard import Storyboard
from .unattended import Unattended

log = logging.getLogger(__name__)

CAPTURES_DIR = PROJECT_ROOT / "captures"
SHOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_REASON_CHARS = 1000  # a refusal sent back and kept as last_error: a sentence, never a dump
# Who fired a cue, as its event says, besides a sender (curation.who: "osc 10.0.0.5:53000", "web").
CLOCK, SHOW_START, KEYBOARD = "clock", "show start", "keyboard"


def _settle(control: Control, outcome: ControlOutcome) -> None:
    """Tell a waiting sender what became of its control (once; a sender that gave up is fine)."""
    if control.outcome is not None and not control.outcome.done():
        try:
            control.outcome.set_result(outcome)
        except Exception:  # cancelled meanwhile by a sender that stopped waiting
            pass


class ControlError(ValueError):
    """A control that is well-formed but cannot be done (no such cue, style or show)."""


@dataclass
class ShowState:
    """What performers, cues and visitors have set. Main thread only."""

    prompt: Prompt
    params: GenerationParams
    words: str = ""  # the words painted: the visitor's, or a performer's
    templated: bool = False  # whether `words` are painted through the style's template
    style: str = ""  # "" = the show's [prompt] template
    cue_index: int = -1  # -1 = before the first cue
    listening: bool = True
    frozen: bool = False
    blackout: bool = False
    blackout_fade_s: float = 1.0
    caption_text: str = ""
    last_transcript: str = ""
    last_error: str = ""
    approved_by: str = ""  # [curation]: who let the painted words through
    scene: SceneWords = SceneWords()  # the scene words painted now (they change at most every change_every_s)
    scene_t: float = float("-inf")  # when they last changed
    seen: Scene | None = None  # the vision stage's newest scene, for status


def initial_prompt(cfg: PromptConfig) -> Prompt:
    """The show's starting prompt: what is painted before anyone speaks or cues."""
    return Prompt(text=cfg.initial, negative=cfg.negative, source="show")


def _fit(value: Any) -> Any:
    """A status value as sent: strings cut to STATUS_TEXT_MAX_BYTES, everything else as is."""
    return fit_utf8(value, STATUS_TEXT_MAX_BYTES) if isinstance(value, str) else value


def shows_available() -> list[str]:
    return sorted(p.stem for p in SHOWS_DIR.glob("*.toml"))


def resolve_show_name(name: str) -> Path:
    """A show in shows/ by its name only: performers pick shows, they do not name files."""
    name = name.strip().removesuffix(".toml")
    if not SHOW_NAME.match(name) or ".." in name:
        raise ControlError(f"expected a show name from shows/ (letters, digits, - _ .), got {name!r}")
    path = SHOWS_DIR / f"{name}.toml"
    if not path.is_file():
        raise ControlError(f"no show {name!r} in shows/ (available: {', '.join(shows_available()) or 'none'})")
    return path


class ShowControl:
    """Applies Controls to the running show and answers queries.

    `show` is the show file's settings, `host` what the control drives, `params` the
    generation settings to start from (the show's, from its [generator] table)."""

    def __init__(self, show: Show, host: ShowHost, params: GenerationParams,
                 faults: FaultInjector = NO_FAULTS) -> None:
        self.show = show
        self.host = host
        self.faults = faults  # /jadong/fault arms these (the soak harness; off unless --faults)
        self.state = ShowState(prompt=initial_prompt(show.prompt), params=params)
        self.state.listening = show.speech.listen == "always"  # gated: a performer opens it; presence: a visitor
        self.queue = CurationQueue(show.curation)  # visitors' words waiting for a person ([curation])
        # Captures by OSC, key, cue or every Nth prompt ([capture]); a failed write is told like a refusal.
        # Jadong's own signing credentials are kept in credentials/ beside captures/.
        self.captures = Captures(show, host.on_event, CAPTURES_DIR, credentials_dir=CAPTURES_DIR.parent / "credentials",
                                 on_error=lambda reason: setattr(self.state, "last_error", reason[:MAX_REASON_CHARS]))
        self.storyboard = Storyboard(show.cues, loop=show.storyboard.loop)  # the cues' clock
        self._autostart = show.storyboard.autostart  # fired on the first tick: when the show runs
        self.unattended = Unattended(show, host.on_event)  # [hours] and [attract]: ticked with the show
        # A setter's return value (capture's Path, for one) is ignored.
        self._setters: dict[str, Callable[[Control], object]] = {
            "/jadong/prompt": lambda c: self.set_words(c.args[0], templated=False, source="osc"),
            "/jadong/prompt/append": lambda c: self.append_words(c.args[0]),
            "/jadong/prompt/clear": lambda c: self.clear_prompt(),
            "/jadong/prompt/blend": lambda c: self.set_params(prompt_blend_s=c.args[0]),
            "/jadong/negative": lambda c: self.set_negative(c.args[0]),
            "/jadong/style": lambda c: self.set_style(c.args[0]),
            "/jadong/strength": lambda c: self.set_params(strength=c.args[0]),
            "/jadong/steps": lambda c: self.set_params(steps=c.args[0]),
            "/jadong/seed": lambda c: self.set_params(seed=c.args[0]),
            "/jadong/seed/drift": lambda c: self.set_params(seed_drift=c.args[0]),
            "/jadong/mode": lambda c: self.set_params(mode=c.args[0]),
            "/jadong/cue/go": lambda c: self.go_cue(c.args[0], by=who(c.sender)),
            "/jadong/cue/next": lambda c: self.step_cue(+1, by=who(c.sender)),
            "/jadong/cue/prev": lambda c: self.step_cue(-1, by=who(c.sender)),
            "/jadong/show": lambda c: self.host.request_show(resolve_show_name(c.args[0]), c.sender),
            "/jadong/listen": lambda c: self.set_listening(c.args[0]),
            "/jadong/freeze": lambda c: self.set_freeze(c.args[0]),
            "/jadong/blackout": lambda c: self.set_blackout(c.args[0]),
            "/jadong/blackout/fade": lambda c: setattr(self.state, "blackout_fade_s", c.args[0]),
            "/jadong/crossfade": lambda c: self.host.screen.set_crossfade(c.args[0]),
            "/jadong/caption": lambda c: self.host.screen.set_caption_visible(c.args[0]),
            "/jadong/caption/text": lambda c: self.set_caption(c.args[0]),
            "/jadong/hud": lambda c: self.host.screen.set_hud_visible(c.args[0]),
            "/jadong/capture": lambda c: self.capture(c.sender),
            "/jadong/status": lambda c: self.host.send_status(c.sender) if c.sender else None,
            "/jadong/quit": lambda c: self.host.request_quit("osc", c.sender),
            "/jadong/fault": lambda c: self.arm_fault(c.args[0]),
            "/jadong/queue": lambda c: self.reply_queue(c.sender),
            "/jadong/queue/approve": lambda c: self.approve(c.args[0], c.sender),
            "/jadong/queue/edit": lambda c: self.edit(c.args[0], c.args[1], c.sender),
            "/jadong/queue/reject": lambda c: self.reject(c.args[0], c.sender),
            "/jadong/hours/override": lambda c: self.unattended.set_override(c.args[0], who(c.sender)),
            "/jadong/attract": lambda c: self.unattended.force_attract(c.args[0], who(c.sender)),
        }
        self._getters: dict[str, Callable[[], tuple[Any, ...]]] = {
            "/jadong/prompt": lambda: (self.state.prompt.text,),
            "/jadong/prompt/blend": lambda: (float(self.state.params.prompt_blend_s),),
            "/jadong/negative": lambda: (self.state.prompt.negative,),
            "/jadong/style": lambda: (self.state.style,),
            "/jadong/strength": lambda: (float(self.state.params.strength),),
            "/jadong/steps": lambda: (int(self.state.params.steps),),
            "/jadong/seed": lambda: (int(self.state.params.seed),),
            "/jadong/seed/drift": lambda: (float(self.state.params.seed_drift),),
            "/jadong/mode": lambda: (self.state.params.mode,),
            "/jadong/cue": lambda: (self.state.cue_index + 1, self.cue_name()),
            "/jadong/listen": lambda: (int(self.state.listening),),
            "/jadong/freeze": lambda: (int(self.state.frozen),),
            "/jadong/blackout": lambda: (int(self.state.blackout),),
            "/jadong/blackout/fade": lambda: (float(self.state.blackout_fade_s),),
            "/jadong/crossfade": lambda: (float(self.host.screen.crossfade_s),),
            "/jadong/caption": lambda: (int(bool(self.host.screen.caption_visible)),),
            "/jadong/caption/text": lambda: (self.state.caption_text,),
            "/jadong/hud": lambda: (int(bool(self.host.screen.hud_visible)),),
            "/jadong/hours/override": lambda: (self.unattended.override,),
            "/jadong/attract": lambda: (int(self.unattended.attracting),),
        }

    # --- dispatch ---------------------------------------------------------------------
    @property
    def setters(self) -> dict[str, Callable[[Control], object]]:
        return self._setters

    @property
    def getters(self) -> dict[str, Callable[[], tuple[Any, ...]]]:
        return self._getters

    def add_controls(self, setters: dict[str, Callable[[Control], object]],
                     getters: dict[str, Callable[[], tuple[Any, ...]]]) -> None:
        """More addresses answered here, refused and replied to like the table's own (each
        stream's /jadong/stream/N/... controls, control/streams.py)."""
        self._setters.update(setters)
        self._getters.update(getters)

    def handle(self, control: Control) -> None:
        address = control.address.lower()
        try:
            if control.query:
                getter = self._getters.get(address)
                if getter is None:
                    raise ControlError("this address has no value to report")
                values = getter()
                if control.sender is not None:
                    self.host.reply(control.sender, address, *values)
                _settle(control, ControlOutcome(ok=True, values=values))
                return
            setter = self._setters.get(address)
            if setter is None:
                raise ControlError("no handler for this address")
            self.unattended.operator(address)  # somebody is at the controls: attract ends
            setter(control)
            _settle(control, ControlOutcome(ok=True))
        except (ControlError, ShowError) as exc:
            self.refuse(control, str(exc))
        except Exception as exc:  # a bug here must cost one control, never the show
            log.exception("control %s failed", address)
            self.refuse(control, f"could not be done: {type(exc).__name__}: {exc}")

    def arm_fault(self, kind: str) -> None:
        """/jadong/fault KIND: the soak harness's injected fault (core/faults.py), refused unless
        the app runs with --faults."""
        try:
            self.faults.arm(kind)
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    def refuse(self, control: Control, reason: str) -> None:
        reason = shorten(reason, MAX_REASON_CHARS)  # a show file's error can be long; a reply must fit a datagram
        self.state.last_error = f"{control.address}: {reason}"
        # Through the host's event hook, which rate-limits: a controller hammering a refused address must not
        # write a log line per message.
        self.host.on_event("error", source="control", stage="control", address=control.address, reason=reason)
        if control.sender is not None:
            self.host.reply(control.sender, ERROR_ADDRESS, control.address, reason)
        _settle(control, ControlOutcome(ok=False, reason=reason))

    # --- the words ----------------------------------------------------------------------
    def template(self) -> str:
        return self.show.styles.get(self.state.style, self.show.prompt.template)

    def paint(self, source: str, caption: str = "") -> None:
        """Turn the current words into the prompt the generator paints."""
        st = self.state
        words = clean_words(st.words)
        scene_seen = self.uses_scene() and any(st.scene.values().values())
        if words and not st.templated:
            text = words  # a performer's words, painted as sent
        elif words or scene_seen:
            # The template with the visitor's words and the scene's; before anyone speaks, a
            # scene show paints what the camera sees, any other show its initial words.
            empty = {str(name): word for name, word in self.show.scene.empty.items()}
            text = fill_template(self.template(), {"speech": words, **st.scene.values()}, empty)
        else:
            text = ""
        if not text:
            # The show's initial words, with the negative prompt cues and OSC have set.
            prompt = replace(initial_prompt(self.show.prompt), negative=st.prompt.negative)
        else:
            prompt = Prompt(text=text[:MAX_PROMPT_CHARS], negative=st.prompt.negative,
                            source=source if words else "scene", caption=caption,
                            approved_by=st.approved_by if words else "")
        st.prompt = prompt
        self.host.publish_prompt(prompt)

    def set_words(self, words: str, templated: bool, source: str, caption: str = "",
                  approved_by: str = "") -> None:
        if not clean_words(words):
            raise ControlError("expected some words, got an empty prompt (use /jadong/prompt/clear)")
        self.state.approved_by = approved_by
        self.state.words = words
        self.state.templated = templated
        self.paint(source, caption)

    def append_words(self, words: str) -> None:
        if not clean_words(words):
            raise ControlError("expected some words to append")
        base = clean_words(self.state.words) or clean_words(self.state.prompt.text)
        combined = f"{base}, {clean_words(words)}" if base else words
        if len(combined) > MAX_PROMPT_CHARS:
            # Appending again and again must not grow the prompt without end.
            raise ControlError(f"the prompt would be {len(combined)} characters; at most {MAX_PROMPT_CHARS} "
                               "characters are accepted (send /jadong/prompt with fewer words)")
        self.state.words = combined
        self.paint("osc")

    def clear_prompt(self) -> None:
        """Back to the show's initial prompt, negative prompt included."""
        self.state.words = ""
        self.state.templated = False
        self.state.prompt = replace(self.state.prompt, negative=self.show.prompt.negative)
        self.paint("show")

    def set_negative(self, text: str) -> None:
        self.state.prompt = replace(self.state.prompt, negative=text.strip(), t=time.monotonic())
        self.host.publish_prompt(self.state.prompt)

    def set_style(self, name: str) -> None:
        styles = self.show.styles
        # Matched like cue names: spaces and case do not matter (a show cannot hold two styles
        # that differ only by case).
        by_lower = {known.lower(): known for known in styles}
        name = by_lower.get(name.strip().lower(), name.strip())
        if name and name not in styles:
            raise ControlError(f"no style {name!r} in this show (known: {', '.join(styles) or 'none'})")
        self.state.style = name
        if self.state.words:
            self.state.templated = True  # a style is a way of painting the current words
            self.paint(self.state.prompt.source if self.state.prompt.source != "show" else "osc",
                       self.state.prompt.caption)

    def from_speech(self, english: str, caption: str) -> None:
        if self.show.curation.enabled:
            self.hold_words(english, caption)  # a person decides first
            return
        self.set_words(english, templated=True, source="speech", caption=caption)

    # --- curation: the artist keeps the last choice ([curation]) ---------------------------
    # Reject and timeout-drop clear the caption if it still shows those words waiting: the
    # waiting mark promised a picture, and words left on screen would read as painted. Approve,
    # edit and timeout-accept show the visitor's own words (the mark gone) unless other words
    # are waiting on screen. An edit changes the prompt, never what the visitor is shown to
    # have said; the event log keeps both.
    def waiting_caption(self, words: PendingWords) -> str:
        return f"{words.caption} {self.show.curation.waiting_caption}".strip()

    def hold_words(self, english: str, caption: str, now: float | None = None) -> PendingWords:
        """Queue a visitor's words for a decision; the caption shows them with the waiting mark."""
        text = clean_words(english)
        if not text:
            raise ControlError("expected some words, got an empty prompt")
        words, pushed_out = self.queue.add(text, clean_words(caption) or text, now)
        for old in pushed_out:  # the bound: the oldest go first, and say so
            self.queue.remember(old, OVERFLOW, "queue", words.t)
            self._report(old, OVERFLOW, "queue", old.text, words.t)
            self._take_caption_back(old)
        self.set_caption(self.waiting_caption(words))
        self.host.on_event("curation", state="waiting", id=words.id, text=words.text, caption=words.caption,
                           pending=len(self.queue))
        return words

    def approve(self, words_id: int, sender: Sender | None = None) -> None:
        words = self._waiting(words_id)
        self._decide(words, APPROVE, who(sender), words.text)

    def edit(self, words_id: int, text: str, sender: Sender | None = None) -> None:
        words = self._waiting(words_id)
        if not clean_words(text):
            raise ControlError("expected the edited words, got none (use /jadong/queue/reject to paint nothing)")
        if len(text) > MAX_PROMPT_CHARS:
            raise ControlError(f"the edited words are {len(text)} characters; at most {MAX_PROMPT_CHARS} are accepted")
        self._decide(words, EDIT, who(sender), text.strip())

    def reject(self, words_id: int, sender: Sender | None = None) -> None:
        words = self._waiting(words_id)
        self._decide(words, REJECT, who(sender), words.text)

    def tick(self, now: float | None = None) -> None:
        """Every frame: opening hours and attract mode follow the clock and presence, the
        storyboard's clock fires the cue that is due, and words nobody decided on within
        [curation] timeout_s get on_timeout."""
        now = time.monotonic() if now is None else now
        self.unattended.tick(now, bool(self.state.seen and self.state.seen.presence))
        self.run_storyboard(now)
        self.captures.tick(self.host.screen.current_frame, now, self.cue_name(), self.state.style)
        if not len(self.queue):
            return
        accept = self.show.curation.on_timeout == "accept"
        for words in self.queue.expired(now):
            self._decide(words, TIMEOUT_ACCEPT if accept else TIMEOUT_DROP, "timeout", words.text, now)

    def discard_pending(self, by: str = "show switch") -> None:
        """Every word waiting dropped, each with its event (the show stops or changes)."""
        now = time.monotonic()
        for words in self.queue.clear():
            self._decide(words, DISCARDED, by, words.text, now)

    def queue_snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """The words waiting, for the operator's page: [{id, text, caption, age_s, left_s}], oldest first."""
        return self.queue.snapshot(now)

    def reply_queue(self, sender: Sender | None) -> None:
        """/jadong/queue: how many words wait, and the oldest (id, English, the visitor's words,
        seconds waited); 0, "", "", 0.0 when none wait. Approve it with /jadong/queue/approve 0."""
        if sender is None:
            return
        pending = self.queue.pending()
        if not pending:
            self.host.reply(sender, "/jadong/queue", 0, 0, "", "", 0.0)
            return
        oldest = pending[0]
        self.host.reply(sender, "/jadong/queue", len(pending), oldest.id, _fit(oldest.text), _fit(oldest.caption),
                        round(max(0.0, time.monotonic() - oldest.t), 2))

    def _waiting(self, words_id: int) -> PendingWords:
        try:
            return self.queue.find(words_id)
        except UnknownWords as exc:
            hint = ("" if self.show.curation.enabled
                    else "; this show paints visitors' words at once ([curation] enabled = false)")
            raise ControlError(f"{exc}{hint}") from None

    def _decide(self, words: PendingWords, decision: str, by: str, text: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.queue.remove(words, decision, by, now)
        # The decision is logged before the prompt it paints: the log reads "approved by ..., then painted".
        self._report(words, decision, by, text, now)
        if decision not in PAINTING:
            self._take_caption_back(words)
            return
        self.set_words(text, templated=True, source="speech", caption=words.caption,
                       approved_by=f"{decision} by {by}")
        if not any(self.state.caption_text == self.waiting_caption(w) for w in self.queue.pending()):
            self.set_caption(words.caption)

    def _report(self, words: PendingWords, decision: str, by: str, text: str, now: float) -> None:
        fields: dict[str, Any] = {"state": "painted" if decision in PAINTING else "dropped", "id": words.id,
                                  "decision": decision, "who": by, "text": text, "caption": words.caption,
                                  "waited_s": round(max(0.0, now - words.t), 3)}
        if decision == EDIT:
            fields["heard"] = words.text
        self.host.on_event("curation", **fields)

    def _take_caption_back(self, words: PendingWords) -> None:
        if self.state.caption_text == self.waiting_caption(words):
            self.set_caption("")

    # --- the scene ------------------------------------------------------------------------
    def uses_scene(self) -> bool:
        """Whether the template painted now has scene placeholders."""
        return bool(template_placeholders(self.template()) & set(SCENE_WORDS))

    def from_scene(self, scene: Scene | None, now: float | None = None) -> bool:
        """The vision stage's newest scene. Its words change the prompt at most every
        [scene] change_every_s, and never under words a visitor or performer put there unless
        the show allows it (over_speech); a change blends in like any prompt change. True if
        the prompt was repainted."""
        st = self.state
        st.seen = scene
        cfg = self.show.scene
        words = scene_words(scene, cfg)
        now = time.monotonic() if now is None else now
        if words == st.scene or now - st.scene_t < cfg.change_every_s:
            return False
        if clean_words(st.words) and not (st.templated and cfg.over_speech):
            return False  # the visitor's (or performer's) words are not overridden
        st.scene, st.scene_t = words, now
        if not self.uses_scene():
            return False
        if clean_words(st.words):
            self.paint(st.prompt.source, st.prompt.caption)
            return True
        self.paint("scene")
        if cfg.caption and scene is not None:
            # The colours in the visitor's language: the prompt stays English.
            language = self.show.speech.language
            self.set_caption(" · ".join(colour_name(c, language) for c in scene.colours[: cfg.max_colours]))
        return True

    # --- generation settings --------------------------------------------------------------
    def set_params(self, **changes: Any) -> None:
        self.state.params = replace(self.state.params, t=time.monotonic(), **changes)
        self.host.publish_params(self.state.params)

    # --- cues ---------------------------------------------------------------------------
    def cue_name(self) -> str:
        i = self.state.cue_index
        cues = self.show.cues
        return cues[i].name if 0 <= i < len(cues) else ""

    def find_cue(self, which: int | str) -> int:
        cues = self.show.cues
        if not cues:
            raise ControlError("this show has no cues")
        if isinstance(which, int) or (isinstance(which, str) and which.strip().isdigit()):
            number = int(which)
            if not 1 <= number <= len(cues):
                raise ControlError(f"no cue number {number}: the show has cues 1 to {len(cues)}")
            return number - 1
        wanted = which.strip().lower()
        for i, cue in enumerate(cues):
            if cue.name.lower() == wanted:
                return i
        raise ControlError(f"no cue {which!r} (cues: {', '.join(c.name for c in cues)})")

    def step_cue(self, step: int, by: str = "local") -> None:
        """GO (+1) or back (-1) from the current cue; with [storyboard] loop, round the ends."""
        cues = self.show.cues
        if not cues:
            raise ControlError("this show has no cues")
        index = self.storyboard.step(step)
        if index is None:
            raise ControlError(f"already at the last cue ({cues[-1].name})")
        self.fire_cue(index, by)

    def go_cue(self, which: int | str, by: str = "local") -> None:
        self.fire_cue(self.find_cue(which), by)

    def fire_cue(self, index: int, by: str, at: float | None = None, now: float | None = None) -> None:
        """Apply cue `index` and start its clock at `at` (a GO: now; the clock: when it was due).
        The `cue` event says who fired it, when it was scheduled and, for the clock, how late."""
        cue = self.show.cues[index]
        now = time.monotonic() if now is None else now
        at = now if at is None else at
        self.apply_cue(cue)
        self.state.cue_index = index
        self.storyboard.start(index, at)
        if cue.capture:  # the cue's picture, once it is on screen
            self.captures.arm(Trigger("cue", by), self.state.prompt.t, self.state.params.t, cue.name, now)
        fields: dict[str, Any] = {"number": index + 1, "name": cue.name, "by": by, "scheduled": round(at, 4)}
        if cue.duration_s is not None:
            fields["duration_s"] = cue.duration_s
        if by == CLOCK:
            fields["late_s"] = round(now - at, 4)
        self.host.on_event("cue", **fields)

    def resume_cue(self, index: int, now: float) -> None:
        """Cue `index` is current again after a restart (control/state_store.py): its settings
        come from the saved state, not from firing it again, and [storyboard] autostart does not
        jump back to the first cue. Its clock starts afresh from `now`."""
        self.state.cue_index = index
        self.storyboard.start(index, now)
        self._autostart = False

    def run_storyboard(self, now: float) -> None:
        """The clock's part of a frame: [storyboard] autostart on the first, then any cue due."""
        if self._autostart:
            self._autostart = False
            self._fire_by_clock(0, now, now, SHOW_START)
        due = self.storyboard.due(now)
        if due is not None:
            self._fire_by_clock(due.index, due.at, now, CLOCK)

    def _fire_by_clock(self, index: int, at: float, now: float, by: str) -> None:
        try:
            self.fire_cue(index, by, at, now)
        except Exception as exc:  # a bug in one cue must cost that cue, never the show's main loop
            log.exception("cue %d fired by the %s failed", index + 1, by)
            self.storyboard.start(index, at)  # the clock moves on: a failing cue is not retried every frame
            self.state.last_error = f"cue {index + 1}: could not be done: {type(exc).__name__}: {exc}"
            self.host.on_event("error", source="control", stage="control", address=f"cue {index + 1}",
                               reason=self.state.last_error)

    def keyboard(self, action: str) -> None:
        """The presenter's keys: "go" (space, right arrow) fires the next cue and "back" (left
        arrow) the previous one, as /jadong/cue/next and /prev do; a refusal is logged (no
        one to reply to)."""
        address, step = {"go": ("/jadong/cue/next", +1), "back": ("/jadong/cue/prev", -1)}[action]
        self.unattended.operator(f"keyboard {action}")
        try:
            self.step_cue(step, by=KEYBOARD)
        except ControlError as exc:
            self.refuse(Control(address=address), str(exc))

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds the current cue has left on the storyboard's clock (0 once over, while it
        waits for GO), or None when it does not end by itself."""
        left = self.storyboard.time_left(time.monotonic() if now is None else now)
        return None if left is None else round(left, 3)

    def apply_cue(self, cue: Cue) -> None:
        changes = {k: getattr(cue, k) for k in ("strength", "steps", "seed", "seed_drift", "mode", "lora_scale", "mask")
                   if getattr(cue, k) is not None}
        if cue.blend_s is not None:
            changes["prompt_blend_s"] = cue.blend_s
        if changes:
            self.set_params(**changes)
        if cue.negative is not None:
            self.state.prompt = replace(self.state.prompt, negative=cue.negative)
        if cue.style is not None:
            self.state.style = cue.style
        if cue.prompt is not None:
            self.state.words = cue.prompt
            self.state.templated = cue.style is not None
            self.paint("cue")
        elif cue.style is not None or cue.negative is not None:
            self.state.templated = self.state.templated or cue.style is not None
            self.paint(self.state.prompt.source)
        if cue.crossfade_s is not None:
            self.host.screen.set_crossfade(cue.crossfade_s)
        if cue.caption is not None:
            self.set_caption(cue.caption)
        if cue.listen is not None:
            self.set_listening(cue.listen)
        if cue.fade_s is not None:
            self.state.blackout_fade_s = cue.fade_s
        if cue.blackout is not None:
            self.set_blackout(cue.blackout)

    # --- listening and the screen ---------------------------------------------------------
    def set_listening(self, on: bool) -> None:
        self.state.listening = bool(on)
        self.host.set_listening(self.state.listening)
        self.host.on_event("listen", on=self.state.listening)

    def set_freeze(self, on: bool) -> None:
        self.state.frozen = bool(on)

    def set_blackout(self, on: bool) -> None:
        self.state.blackout = bool(on)
        self.host.screen.set_blackout(self.state.blackout, self.state.blackout_fade_s)

    def set_caption(self, text: str) -> None:
        self.state.caption_text = text
        self.host.screen.set_caption(text)

    # --- capture ----------------------------------------------------------------------------
    def capture(self, sender: Sender | None, trigger: Trigger | None = None) -> Path:
        """Save the frame on screen with the words and settings that made it (traceability),
        signed with content credentials; the files are written off the main thread
        (control/archive.py) and the `capture` event follows them."""
        frame = self.host.screen.current_frame
        if frame is None:
            raise ControlError("no generated frame on screen yet")
        by = who(sender)
        try:
            return self.captures.take(frame, trigger or Trigger(by.split()[0], by), self.cue_name(), self.state.style,
                                      done=lambda path, error: self._captured(sender, path, error))
        except CaptureError as exc:
            raise ControlError(str(exc)) from None

    def _captured(self, sender: Sender | None, path: Path, error: str) -> None:
        """A capture a performer asked for is on disk (its path is the reply) or failed (/jadong/error;
        the archive has logged the failure already)."""
        if sender is None:
            return
        if error:
            self.refuse(Control(address="/jadong/capture", sender=sender), error)
        else:
            self.host.reply(sender, "/jadong/capture", str(path))

    def capture_key(self) -> None:
        """The presenter's capture key (p), as /jadong/capture; a refusal is logged (no one to reply to)."""
        self.unattended.operator("keyboard capture")
        try:
            self.capture(None, Trigger("key", f"keyboard ({CAPTURE_KEY})"))
        except ControlError as exc:
            self.refuse(Control(address="/jadong/capture"), str(exc))

    # --- status -------------------------------------------------------------------------------
    def status_values(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every /jadong/status/... address with its value now (STATUS_ADDRESSES, in order).
        Strings are cut to STATUS_TEXT_MAX_BYTES, so the bundle fits one datagram whatever the
        state holds (a long transcript, an error from a show file)."""
        run = self.host.runtime_status()
        left = self.time_left()
        values: dict[str, tuple[Any, ...]] = {
            "/jadong/status/fps/display": (float(run.rates.get("display", 0.0)),),
            "/jadong/status/fps/generator": (float(run.rates.get("generator", 0.0)),),
            "/jadong/status/fps/camera": (float(run.rates.get("camera", 0.0)),),
            "/jadong/status/prompt": (self.state.prompt.text,),
            "/jadong/status/transcript": (self.state.last_transcript,),
            "/jadong/status/listening": (int(self.state.listening),),
            "/jadong/status/cue": (self.cue_name(),),
            "/jadong/status/generator": (run.generator,),
            "/jadong/status/error": (self.state.last_error,),
            "/jadong/status/dropped": (int(run.dropped),),
            "/jadong/status/presence": (int(bool(self.state.seen and self.state.seen.presence)),),
            "/jadong/status/people": (int(self.state.seen.people if self.state.seen else 0),),
            "/jadong/status/scene": (scene_words(self.state.seen, self.show.scene).summary(),),
            "/jadong/status/queue": (len(self.queue),),
            "/jadong/status/time_left": (float(-1.0 if left is None else left),),
            "/jadong/status/attract": (int(self.unattended.attracting),),
            "/jadong/status/open": (int(self.unattended.open),),
        }
        return [(address, tuple(_fit(v) for v in values[address])) for address in STATUS_ADDRESSES]
