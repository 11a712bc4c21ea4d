"""Which fields of which events hold a visitor's words, and how they are withheld.

One table for the two places that take the words out: the event log of a show that keeps no
visitor's words ([privacy] keep_words = false) withholds them as each line is written, and the
retention janitor rewrites log files older than [privacy] words_days the same way. A withheld
field is replaced by its word count (`text` becomes `text_words: 4`), so the log still says
how much was said and when, for staff and for counting, but not what.

Whose words are whose: what a visitor said (heard, partial, transcript, rejected, moderated,
curation) is always a visitor's. A prompt is a visitor's unless its `source` is the show's own
(SHOWS_OWN_SOURCES: the show, a cue, the scene, attract mode): a speech prompt holds the
visitor's words, and an OSC prompt may too (`/jadong/prompt/append` and `/jadong/style` build
on the words painted now), so a prompt from OSC is withheld as well; the operator's own words
stay in the `osc` event that carried them. Scene words are the camera's description, not
anyone's speech, and stay.

A new event that carries a visitor's words must be listed here: tests/core/test_event_log.py
reads every event the package writes with `text=`, `prompt=`, `words=`, `caption=`, `english=`
or `heard=` and fails for one that is in neither table (nor on its short list of events whose
words are the artist's).
"""

from __future__ import annotations

from typing import Any

# Prompt sources whose words are the show's own (the artist's): kept even when visitors' are not.
# "attract" is attract mode's prompt cycle, from the show file's [attract] prompts.
SHOWS_OWN_SOURCES = ("show", "cue", "scene", "attract")

# Event -> its fields that always hold a visitor's words.
VISITOR_WORDS: dict[str, tuple[str, ...]] = {
    "heard": ("text", "english"),
    "partial": ("text",),
    "transcript": ("text", "english"),
    "rejected": ("text",),
    "moderated": ("text", "english", "words"),  # `words`: the listed words found in what was said
    "curation": ("text", "caption", "heard"),  # an edit's text is the visitor's words, edited
}
# Event -> its fields holding a prompt: a visitor's words unless the event's `source` is one of
# SHOWS_OWN_SOURCES (a line without a source, from an older version, counts as a visitor's).
PROMPT_WORDS: dict[str, tuple[str, ...]] = {
    "prompt": ("text",),
    "presented": ("prompt",),
    "capture": ("prompt",),
    "stream": ("prompt",),  # one stream's own prompt, in a show with [[streams]]
}
# OSC addresses whose arguments are a visitor's words (an edit of words waiting in the queue).
OSC_WORDS_ADDRESSES = ("/jadong/queue/edit",)

def count_words(value: Any) -> int:
    """How many words `value` holds: a string's whitespace-separated words, a list's summed."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, (list, tuple)):
        return sum(count_words(v) for v in value)
    return 0


def words_fields(event: str, record: dict[str, Any]) -> tuple[str, ...]:
    """The fields of `record` (an `event` line) that hold a visitor's words."""
    fields = VISITOR_WORDS.get(event, ())
    if event in PROMPT_WORDS and record.get("source") not in SHOWS_OWN_SOURCES:
        fields = PROMPT_WORDS[event]
    elif event == "osc" and str(record.get("address", "")).lower() in OSC_WORDS_ADDRESSES:
        fields = ("args",)
    return tuple(name for name in fields if name in record)


def withhold(event: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with each visitor's words replaced by its word count (`text` -> `text_words`),
    in the same place in the line; `record` itself when it holds none. Applying it again
    changes nothing, so a scrubbed file can be scrubbed twice."""
    fields = words_fields(event, record)
    if not fields:
        return record
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in fields:
            out[f"{key}_words"] = count_words(value)
        else:
            out[key] = value
    return out


__all__ = ["OSC_WORDS_ADDRESSES", "PROMPT_WORDS", "SHOWS_OWN_SOURCES", "VISITOR_WORDS",
           "count_words", "withhold", "words_fields"]
