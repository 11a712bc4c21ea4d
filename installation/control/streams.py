"""Each stream's part of the show: what it paints and with what settings, and its OSC controls
(/jadong/stream/N/prompt, /strength, /seed, /style, /words), on the main thread.

The show control (show_control.py) keeps the show's words and settings, as it always has; every
stream follows them, through its own `[[streams]]` table:

- words: the show's prompt reaches every stream; a stream with its own template or style paints
  the same words through it, and its own `initial` words before anyone speaks. A stream with
  `words = false` ignores visitors' words (a prompt whose source is "speech") and keeps what it
  was painting; cues, performers' prompts and scene words still reach it.
- settings: the show's params, with the stream's own seed and strength where it has them.
- /jadong/stream/N/prompt paints words on that stream alone, until the next show prompt that
  stream takes; /strength and /seed give it its own value from then on; /style its own style
  ("" follows the show's again); /words 0 or 1 whether visitors' words reach it.

The results go into each stream's prompt and params slots (core/streams.py), which the
generator worker reads. Stream 1's slots are the app's own, and a show without [[streams]] has
one stream that takes the show's prompt and params objects unchanged: it runs as before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from installation.core.channels import LatestSlot
from installation.core.messages import Control, GeneratedFrame, GenerationParams, Prompt
from installation.core.streams import Crop, StreamSlots, new_stream_slots
from installation.core.text import clean_words
from installation.show import (
    MAX_PROMPT_CHARS,
    MAX_STREAMS,
    SCENE_WORDS,
    Show,
    StreamConfig,
    show_streams,
    template_placeholders,
)

from .addresses import STATUS_TEXT_MAX_BYTES, STREAM_ADDRESSES, STREAM_STATUS_ADDRESSES, fit_utf8
from .scene_words import SceneWords, fill_template
from .show_control import ControlError, ShowControl

VISITOR = "speech"  # the prompt source of visitors' words (spoken, or approved by a person)
_STREAM_PATH = re.compile(r"^/jadong/stream/(\d+)/(.+)$")


@dataclass(frozen=True)
class Basis:
    """The words a stream paints, as it last took them: the show's (words, whether through the
    template, and where they came from) or its own from /jadong/stream/N/prompt."""

    words: str = ""
    templated: bool = False
    source: str = "show"
    caption: str = ""
    approved_by: str = ""


@dataclass
class StreamState:
    """One stream's settings and what it paints now. Main thread only."""

    config: StreamConfig
    slots: StreamSlots
    words: bool  # visitors' words reach it
    style: str  # "" = the show's style or the stream's template
    strength: float | None  # None = the show's
    seed: int | None
    basis: Basis = Basis()
    own: bool = False  # painting its own words (/jadong/stream/N/prompt)
    prompt: Prompt | None = None
    params: GenerationParams | None = None

    @property
    def index(self) -> int:
        return self.slots.index


class StreamControl:
    """Every stream's state, fed by the show control's prompt and params (`show_prompt`,
    `show_params`, called where the app publishes them) and changed by the per-stream OSC
    controls, which it adds to the show control's table (`ShowControl.add_controls`)."""

    def __init__(self, show: Show, control: ShowControl, first: StreamSlots,
                 on_event: Callable[..., None] | None = None) -> None:
        self.show = show
        self.control = control
        self._on_event = on_event
        self._show_prompt = control.state.prompt
        self._show_params = control.state.params
        self._scene: SceneWords | None = None
        self.streams: list[StreamState] = []
        for i, cfg in enumerate(show_streams(show)):
            crop = Crop.named(cfg.crop)
            slots = (replace(first, name=cfg.name, crop=crop) if i == 0
                     else new_stream_slots(i + 1, cfg.name, crop, self._show_prompt, self._show_params))
            self.streams.append(StreamState(cfg, slots, words=cfg.words, style=cfg.style or "",
                                            strength=cfg.strength, seed=cfg.seed,
                                            basis=self._basis_now(self._show_prompt)))
        for st in self.streams:
            self._repaint(st, self._show_prompt.t)
            self._reparam(st, self._show_params.t)
        control.add_controls(*self._handlers())

    # --- what the outputs and the generator read -------------------------------------------
    @property
    def slots(self) -> list[StreamSlots]:
        return [st.slots for st in self.streams]

    def frames(self) -> dict[int, GeneratedFrame | None]:
        """Each stream's newest frame, by stream number (for the outputs, once per loop)."""
        return {st.index: st.slots.frame.get() for st in self.streams}

    def channels(self) -> list[LatestSlot[GeneratedFrame]]:
        """The frame slots beyond stream 1's (the app counts that one already), for drop counts:
        a frame painted and replaced before any output showed it."""
        return [st.slots.frame for st in self.streams[1:]]

    def stream(self, number: int) -> StreamState:
        if not 1 <= number <= len(self.streams):
            have = "1" if len(self.streams) == 1 else f"1 to {len(self.streams)}"
            raise ControlError(f"no stream {number} in this show (it has stream{'s' if len(self.streams) > 1 else ''} "
                               f"{have}; [[streams]] in the show file)")
        return self.streams[number - 1]

    # --- the show's words and settings reach every stream -----------------------------------
    def show_prompt(self, prompt: Prompt) -> None:
        """The show control published `prompt`: each stream takes it (through its own template)
        or, for visitors' words on a `words = false` stream, only its negative prompt."""
        last, self._show_prompt = self._show_prompt, prompt
        negative_only = (prompt.text, prompt.source) == (last.text, last.source) and prompt.negative != last.negative
        for st in self.streams:
            if negative_only or (prompt.source == VISITOR and not st.words):
                if st.prompt is not None and st.prompt.negative != prompt.negative:
                    self._publish_prompt(st, replace(st.prompt, negative=prompt.negative))
                continue
            st.basis, st.own = self._basis_now(prompt), False
            self._repaint(st, prompt.t)

    def republish(self, t: float) -> None:
        """Each stream's own prompt into its slot again, where something painted over the slots
        beside the show state (attract mode's invitations) and has ended: the stream blends back
        to exactly its words."""
        for st in self.streams:
            if st.prompt is not None and st.slots.prompt.get() is not st.prompt:
                st.prompt = replace(st.prompt, t=t)
                st.slots.prompt.put(st.prompt)

    def show_params(self, params: GenerationParams) -> None:
        self._show_params = params
        for st in self.streams:
            self._reparam(st, params.t)

    def refresh_scene(self) -> None:
        """After the show control took a new scene: streams whose own template has scene words
        repaint with them (the show's own template may have none, and then publishes nothing)."""
        scene = self.control.state.scene
        if scene == self._scene:
            return
        self._scene = scene
        for st in self.streams:
            if self._own_template(st) is not None and self._uses_scene(self._template(st)):
                self._repaint(st, time.monotonic())

    # --- per-stream controls ----------------------------------------------------------------
    def set_prompt(self, number: int, words: str) -> None:
        st = self.stream(number)
        if not clean_words(words):
            raise ControlError(f"expected some words, got an empty prompt (/jadong/stream/{number}/words 1 "
                               "gives the stream the show's words again)")
        st.basis, st.own = Basis(words=words, source="osc"), True
        self._repaint(st, time.monotonic())

    def set_strength(self, number: int, value: float) -> None:
        self.stream(number).strength = float(value)
        self._reparam(self.stream(number), time.monotonic())

    def set_seed(self, number: int, value: int) -> None:
        self.stream(number).seed = int(value)
        self._reparam(self.stream(number), time.monotonic())

    def set_style(self, number: int, name: str) -> None:
        st = self.stream(number)
        styles = self.show.styles
        by_lower = {known.lower(): known for known in styles}
        name = by_lower.get(name.strip().lower(), name.strip())
        if name and name not in styles:
            raise ControlError(f"no style {name!r} in this show (known: {', '.join(styles) or 'none'})")
        st.style = name
        if st.basis.words:
            st.basis = replace(st.basis, templated=True)  # a style is a way of painting the current words
        self._repaint(st, time.monotonic())

    def set_words(self, number: int, on: bool) -> None:
        st = self.stream(number)
        st.words = bool(on)
        if st.words:  # the show's words from now on, starting with the ones it paints now
            st.basis, st.own = self._basis_now(self._show_prompt), False
            self._repaint(st, time.monotonic())

    def restore_stream(self, number: int, *, words: bool, style: str, strength: float | None, seed: int | None,
                       own_words: str) -> None:
        """A stream's settings as a restart found them saved (control/state_store.py)."""
        st = self.stream(number)
        st.words, st.style, st.strength, st.seed = words, style, strength, seed
        if own_words and clean_words(own_words):
            st.basis, st.own = Basis(words=own_words, source="osc"), True
        elif st.words:
            st.basis, st.own = self._basis_now(self._show_prompt), False
        t = time.monotonic()
        self._repaint(st, t)
        self._reparam(st, t)

    def _handlers(self) -> tuple[dict[str, Callable[[Control], object]], dict[str, Callable[[], tuple[Any, ...]]]]:
        """The setters and getters for /jadong/stream/N/... for every N a show may have: a
        number this show lacks is refused with the streams it has."""
        setters: dict[str, Callable[[Control], object]] = {}
        getters: dict[str, Callable[[], tuple[Any, ...]]] = {}
        for n in range(1, MAX_STREAMS + 1):
            do, get = self._setters_for(n), self._getters_for(n)
            assert set(do) == set(STREAM_ADDRESSES), "every per-stream address has a setter"
            for leaf, row in STREAM_ADDRESSES.items():
                setters[f"/jadong/stream/{n}/{leaf}"] = do[leaf]
                if row.kind == "value":
                    getters[f"/jadong/stream/{n}/{leaf}"] = get[leaf]
        return setters, getters

    def _setters_for(self, n: int) -> dict[str, Callable[[Control], object]]:
        return {
            "prompt": lambda c: self.set_prompt(n, c.args[0]),
            "strength": lambda c: self.set_strength(n, c.args[0]),
            "seed": lambda c: self.set_seed(n, c.args[0]),
            "style": lambda c: self.set_style(n, c.args[0]),
            "words": lambda c: self.set_words(n, c.args[0]),
        }

    def _getters_for(self, n: int) -> dict[str, Callable[[], tuple[Any, ...]]]:
        return {
            "prompt": lambda: (self._prompt_of(self.stream(n)).text,),
            "strength": lambda: (float(self._params_of(self.stream(n)).strength),),
            "seed": lambda: (int(self._params_of(self.stream(n)).seed),),
            "style": lambda: (self.stream(n).style,),
            "words": lambda: (int(self.stream(n).words),),
        }

    # --- status --------------------------------------------------------------------------------
    def status_bundles(self) -> list[list[tuple[str, tuple[Any, ...]]]]:
        """One status bundle per stream (/jadong/status/stream/N/...), each its own datagram:
        a stream's prompt may take most of the 8 KB one bundle holds. None for a show with one
        stream: the show's own status says it all."""
        if len(self.streams) == 1:
            return []
        bundles = []
        for st in self.streams:
            params = self._params_of(st)
            values: dict[str, tuple[Any, ...]] = {
                "name": (st.config.name,),
                "prompt": (self._prompt_of(st).text,),
                "strength": (float(params.strength),),
                "seed": (int(params.seed),),
                "style": (st.style,),
                "words": (int(st.words),),
                "frames": (int(st.slots.frame.stats().written),),
            }
            bundles.append([(f"/jadong/status/stream/{st.index}/{leaf}",
                             tuple(fit_utf8(v, STATUS_TEXT_MAX_BYTES) if isinstance(v, str) else v
                                   for v in values[leaf]))
                            for leaf in STREAM_STATUS_ADDRESSES])
        return bundles

    # --- internals -------------------------------------------------------------------------------
    def _basis_now(self, prompt: Prompt) -> Basis:
        state = self.control.state
        return Basis(words=state.words, templated=state.templated, source=prompt.source, caption=prompt.caption,
                     approved_by=prompt.approved_by)

    def _own_template(self, st: StreamState) -> str | None:
        if st.style:
            return self.show.styles.get(st.style, self.control.template())
        return st.config.template

    def _template(self, st: StreamState) -> str:
        own = self._own_template(st)
        return own if own is not None else self.control.template()

    @staticmethod
    def _uses_scene(template: str) -> bool:
        return bool(template_placeholders(template) & set(SCENE_WORDS))

    def _text(self, st: StreamState) -> str:
        """The stream's words through its template: the same rule as the show control's paint."""
        words = clean_words(st.basis.words)
        template = self._template(st)
        scene = self.control.state.scene.values()
        if words and not st.basis.templated:
            return words  # a performer's words, painted as sent
        if words or (self._uses_scene(template) and any(scene.values())):
            empty = {str(name): word for name, word in self.show.scene.empty.items()}
            return fill_template(template, {"speech": words, **scene}, empty)
        return ""

    def _follows_show(self, st: StreamState) -> bool:
        """True when the stream paints exactly the show's prompt (no template, style or initial
        words of its own, nothing held back): it then takes the show's Prompt object itself."""
        return (not st.own and self._own_template(st) is None and st.config.initial is None
                and st.basis == self._basis_now(self._show_prompt))

    def _repaint(self, st: StreamState, t: float) -> None:
        show = self._show_prompt
        if self._follows_show(st):
            self._publish_prompt(st, show)
            return
        text = self._text(st)
        negative = show.negative
        if not text:
            initial = st.config.initial if st.config.initial is not None else self.show.prompt.initial
            prompt = Prompt(text=initial, negative=negative, source="show", t=t)
        else:
            words = bool(clean_words(st.basis.words))
            prompt = Prompt(text=text[:MAX_PROMPT_CHARS], negative=negative,
                            source=st.basis.source if words else "scene", caption=st.basis.caption,
                            approved_by=st.basis.approved_by if words else "", t=t)
        self._publish_prompt(st, prompt)

    def _publish_prompt(self, st: StreamState, prompt: Prompt) -> None:
        # The show's own prompt goes through as the show control sent it (as it did before
        # streams); a stream's own prompt that says nothing new is not sent again, so the
        # generator is not asked to repaint what it paints.
        if st.prompt is prompt or (prompt is not self._show_prompt and st.prompt is not None
                                   and _same_prompt(st.prompt, prompt)):
            return
        st.prompt = prompt
        st.slots.prompt.put(prompt)
        # The event log has the show's prompt already, and each OSC message (rate-limited):
        # a line here only for words of the stream's own making (its template, its initial words).
        own_words = prompt.text != self._show_prompt.text and prompt.source != "osc"
        if len(self.streams) > 1 and own_words and self._on_event is not None:
            self._on_event("stream", stream=st.index, prompt=prompt.text, source=prompt.source)

    def _reparam(self, st: StreamState, t: float) -> None:
        show = self._show_params
        changes: dict[str, Any] = {}
        if st.strength is not None and st.strength != show.strength:
            changes["strength"] = st.strength
        if st.seed is not None and st.seed != show.seed:
            changes["seed"] = st.seed
        params = replace(show, t=t, **changes) if changes else show
        if st.params is params or (changes and st.params is not None and _same_params(st.params, params)):
            return
        st.params = params
        st.slots.params.put(params)

    def _prompt_of(self, st: StreamState) -> Prompt:
        return st.prompt if st.prompt is not None else self._show_prompt

    def _params_of(self, st: StreamState) -> GenerationParams:
        return st.params if st.params is not None else self._show_params


def _same_prompt(a: Prompt, b: Prompt) -> bool:
    return (a.text, a.negative, a.source, a.caption, a.approved_by) == (b.text, b.negative, b.source, b.caption,
                                                                        b.approved_by)


def _same_params(a: GenerationParams, b: GenerationParams) -> bool:
    return replace(a, t=0.0) == replace(b, t=0.0)


def stream_address(address: str) -> tuple[int, str] | None:
    """(N, leaf) of a /jadong/stream/N/leaf address, or None."""
    match = _STREAM_PATH.match(address.lower())
    return (int(match[1]), match[2]) if match else None
