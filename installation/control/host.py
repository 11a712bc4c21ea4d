"""What the show control drives, as small typed interfaces.

`ShowControl` changes the show; it does not own the screen, the generator's inputs, the OSC
socket or the event log. It reaches them through `ShowHost` (the app implements it) and
`Screen` (the presenter implements it), so the show state can be tested with a small recording
host and no App, window or socket (tests/control/test_control.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt

Sender = tuple[str, int]


class Screen(Protocol):
    """The display as the show control sees it (main thread only)."""

    caption_visible: bool
    hud_visible: bool

    @property
    def crossfade_s(self) -> float: ...

    @property
    def current_frame(self) -> GeneratedFrame | None:
        """The generated frame on screen now, for captures."""
        ...

    def set_crossfade(self, seconds: float) -> None: ...

    def set_caption_visible(self, on: bool) -> None: ...

    def set_caption(self, text: str) -> None: ...

    def set_hud_visible(self, on: bool) -> None: ...

    def set_blackout(self, on: bool, fade_s: float = 0.0) -> None: ...


@dataclass
class ScreenSettings:
    """A screen that only remembers what it was told: stands in before the window opens, so a
    control that arrives first is kept, not lost."""

    crossfade_s: float = 0.0
    caption_visible: bool = True
    hud_visible: bool = False
    caption: str = ""
    blackout: bool = False
    current_frame: GeneratedFrame | None = None

    def set_crossfade(self, seconds: float) -> None:
        self.crossfade_s = max(0.0, float(seconds))

    def set_caption_visible(self, on: bool) -> None:
        self.caption_visible = bool(on)

    def set_caption(self, text: str) -> None:
        self.caption = text

    def set_hud_visible(self, on: bool) -> None:
        self.hud_visible = bool(on)

    def set_blackout(self, on: bool, fade_s: float = 0.0) -> None:
        self.blackout = bool(on)


@dataclass(frozen=True)
class RuntimeStatus:
    """What the running stages report for /jadong/status: rates per stage (frames per second),
    the generator painting now, and how many items all channels have dropped."""

    rates: dict[str, float] = field(default_factory=dict)
    generator: str = ""
    dropped: int = 0


class ShowHost(Protocol):
    """What the show control asks of the running show (the app). Called on the main thread."""

    @property
    def screen(self) -> Screen: ...

    def publish_prompt(self, prompt: Prompt) -> None:
        """The prompt the generator paints from now on (and an event log line)."""
        ...

    def publish_params(self, params: GenerationParams) -> None: ...

    def set_listening(self, on: bool) -> None:
        """Open or close the speech stage's ear."""
        ...

    def reply(self, sender: Sender, address: str, *args: Any) -> None:
        """An OSC reply to whoever sent a control."""
        ...

    def send_status(self, sender: Sender) -> None:
        """All /jadong/status/... values to whoever asked."""
        ...

    def request_show(self, path: Path, sender: Sender | None) -> None:
        """Load another show between two frames (raises ShowError for a broken file)."""
        ...

    def request_quit(self, source: str, sender: Sender | None) -> None: ...

    def on_event(self, event: str, **fields: Any) -> None:
        """The event log (rate-limited for OSC and refused controls)."""
        ...

    def runtime_status(self) -> RuntimeStatus: ...
