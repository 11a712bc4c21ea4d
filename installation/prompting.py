"""Transcript + show state → the prompt the generator paints."""

from __future__ import annotations

import re

from .messages import Prompt, Transcript
from .show import PromptConfig

_SPACES = re.compile(r"\s+")


def clean_words(text: str) -> str:
    """Whisper's text as a prompt fragment: one line, no trailing sentence punctuation."""
    text = _SPACES.sub(" ", text).strip()
    return text.rstrip(" .!?。").strip()


class Prompter:
    """Fills the show's template with the visitor's words. Kept apart from transcription so
    a later stage (moderation, translation) slots in between."""

    def __init__(self, cfg: PromptConfig) -> None:
        self.cfg = cfg

    def initial(self) -> Prompt:
        return Prompt(text=self.cfg.initial, negative=self.cfg.negative, source="show")

    def from_speech(self, transcript: Transcript) -> Prompt | None:
        words = clean_words(transcript.prompt_text)
        if not words:
            return None
        return Prompt(
            text=self.cfg.template.format(speech=words),
            negative=self.cfg.negative,
            source="speech",
            caption=clean_words(transcript.text) or words,
        )

    def from_text(self, text: str, source: str = "osc", apply_template: bool = False) -> Prompt | None:
        words = clean_words(text)
        if not words:
            return None
        body = self.cfg.template.format(speech=words) if apply_template else words
        return Prompt(text=body, negative=self.cfg.negative, source=source)
