"""From heard words to words to paint: the way from an accepted transcript to the prompt.

The speech thread sends what it heard through the transcripts channel: partial transcripts
while a visitor speaks, a final one at the end, or a `CaptionRetraction` when the guards
refuse an utterance whose partial caption was already shown. `WordsPipeline` (main thread)
turns each into what changes on screen and in the prompt:

- moderation first: the caption keeps the visitor's own words (listed words replaced, or the
  whole utterance dropped), the prompt gets the English rendering, moderated the same way;
- a partial only changes the caption; a retraction, or a final one that moderation drops,
  brings back the caption from before the partial;
- a final one becomes the words to paint (the show control fills the template with them).
"""

from __future__ import annotations

from dataclasses import dataclass

from installation.core.events import EventHook, emit
from installation.core.messages import CaptionRetraction, Transcript
from installation.core.text import clean_words

from .moderation import Moderator


@dataclass(frozen=True)
class HeardWords:
    """What one message from the speech stage changes. `caption`: the caption to show now
    (None: leave it). `words`: English words to paint ("" for none). `transcript`: the
    visitor's accepted words, for status ("" for none)."""

    caption: str | None = None
    words: str = ""
    transcript: str = ""


NOTHING = HeardWords()


class WordsPipeline:
    """Transcripts in, caption and prompt words out. Main thread only (it remembers the
    caption a partial replaced)."""

    def __init__(self, moderator: Moderator | None, on_event: EventHook | None = None) -> None:
        self.moderator = moderator
        self._on_event = on_event
        self._caption_before_partial: str | None = None

    def take(self, message: Transcript | CaptionRetraction, caption_now: str) -> HeardWords:
        """What `message` changes, given the caption on screen now."""
        if isinstance(message, CaptionRetraction):
            return HeardWords(caption=self._restore())
        if not message.final:
            return self._partial(message, caption_now)
        return self._final(message)

    def _restore(self) -> str | None:
        before, self._caption_before_partial = self._caption_before_partial, None
        return before

    def _partial(self, transcript: Transcript, caption_now: str) -> HeardWords:
        shown = self.moderator.apply(transcript.text) if self.moderator is not None else None
        if shown is not None and shown.dropped:
            return NOTHING  # a drop-listed word: not even a partial reaches the screen
        caption = clean_words(shown.text if shown is not None else transcript.text)
        if not caption:
            return NOTHING
        if self._caption_before_partial is None:
            self._caption_before_partial = caption_now
        emit(self._on_event, "partial", text=caption, language=transcript.language,
             utterance_end=round(transcript.utterance_end_t, 4))
        return HeardWords(caption=caption)

    def _final(self, transcript: Transcript) -> HeardWords:
        before = self._restore()
        english = transcript.prompt_text
        caption_text = transcript.text
        if self.moderator is not None:
            (caption_text, english), hits, dropped = self.moderator.apply_all(transcript.text, english)
            if hits:
                emit(self._on_event, "moderated", text=transcript.text, english=transcript.english,
                     language=transcript.language, words=list(hits), action=self.moderator.cfg.action)
            if dropped:
                return HeardWords(caption=before)
        words = clean_words(english)
        if not words:
            return NOTHING
        emit(self._on_event, "transcript", text=caption_text, language=transcript.language,
             english=english, utterance_end=round(transcript.utterance_end_t, 4),
             latency_s=round(transcript.t - transcript.utterance_end_t, 3))
        return HeardWords(caption=clean_words(caption_text) or words, words=words, transcript=caption_text)
