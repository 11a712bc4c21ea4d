"""Words as a prompt: cleaning what Whisper returns, and the show's starting prompt."""

from __future__ import annotations

import re

from installation.core.messages import Prompt
from installation.show import PromptConfig

_SPACES = re.compile(r"\s+")


def clean_words(text: str) -> str:
    """Whisper's text as a prompt fragment: one line, no trailing sentence punctuation."""
    text = _SPACES.sub(" ", text).strip()
    return text.rstrip(" .!?。").strip()


class Prompter:
    """The show's starting prompt. How later words are painted (templates, styles, cues) is
    the show control's job (control.py), so there is one place that fills a template."""

    def __init__(self, cfg: PromptConfig) -> None:
        self.cfg = cfg

    def initial(self) -> Prompt:
        return Prompt(text=self.cfg.initial, negative=self.cfg.negative, source="show")
