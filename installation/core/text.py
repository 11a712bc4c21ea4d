"""Text rules every room shares: how words from a visitor, a cue or a performer become a
prompt fragment."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")


def clean_words(text: str) -> str:
    """Words as a prompt fragment: one line, single spaces, no trailing sentence punctuation
    (Whisper ends most transcripts with a full stop; a prompt template goes on after it)."""
    text = _SPACES.sub(" ", text).strip()
    return text.rstrip(" .!?。").strip()
