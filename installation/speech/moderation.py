"""Prompt moderation: the show's word and phrase lists, matched on whole words.

A gallery's screen is public. Before a visitor's words are painted (and captioned), they are
checked against per-language lists (assets/moderation/CODE.txt, or a show's own files) and the
show's `[moderation]` action is taken: flag (paint, but log), replace (the listed words become
`replacement`), or drop (nothing from that utterance reaches the screen). What was matched is
logged, never shown.

Matching is on whole words, never substrings: "ass" does not touch "glass" or "assessment".
Korean attaches particles to nouns (병신이, 새끼를), so a Hangul entry also matches when one of
the common particles follows it; an entry ending in "*" matches every word starting with it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from installation.show import ASSETS_DIR, ModerationConfig, resolve_path

log = logging.getLogger(__name__)

LISTS_DIR = ASSETS_DIR / "moderation"

# Particles and copulas that follow a Korean noun inside one written word.
_KO_PARTICLES = ("이", "가", "은", "는", "을", "를", "의", "에", "에서", "에게", "한테", "께", "도", "만",
                 "과", "와", "랑", "이랑", "로", "으로", "야", "아", "이다", "이야", "들", "들이", "들은", "들을")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


class ModerationError(ValueError):
    """A word list that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class Moderated:
    """The outcome for one text: what may be shown, what matched, whether to drop it all."""

    text: str
    hits: tuple[str, ...] = ()
    dropped: bool = False

    @property
    def flagged(self) -> bool:
        return bool(self.hits)


def list_path(entry: str) -> Path:
    """A list named in a show: a language code ("en" → assets/moderation/en.txt) or a file."""
    entry = entry.strip()
    if re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)?", entry, re.IGNORECASE):
        return LISTS_DIR / f"{entry.lower()}.txt"
    return resolve_path(entry)


def read_list(path: Path) -> list[str]:
    """Entries of a word list file: one a line, "#" comments and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in LISTS_DIR.glob("*.txt"))) or "none"
        raise ModerationError(f"moderation.lists: {path}: no such word list (built-in lists: {known})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModerationError(f"moderation.lists: {path}: cannot be read as UTF-8 text ({exc})") from None
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _pattern(entry: str) -> str:
    prefix = entry.endswith("*")
    words = entry.rstrip("*").split()
    if not words:
        return ""
    body = r"\s+".join(re.escape(w) for w in words)
    if prefix:
        body += r"\w*"
    elif _HANGUL.search(words[-1]):
        body += "(?:" + "|".join(sorted(map(re.escape, _KO_PARTICLES), key=len, reverse=True)) + ")?"
    return r"(?<!\w)" + body + r"(?!\w)"


class Moderator:
    """Compiled lists for one show. Thread-safe once built (it holds nothing that changes)."""

    def __init__(self, cfg: ModerationConfig) -> None:
        self.cfg = cfg
        entries: list[str] = []
        if cfg.enabled:
            for name in cfg.lists:
                entries += read_list(list_path(name))
            entries += [w.strip() for w in cfg.extra_words if w.strip()]
        allowed = {w.strip().lower() for w in cfg.allow_words}
        self.entries = sorted({e for e in entries if e.lower() not in allowed}, key=len, reverse=True)
        patterns = [p for p in map(_pattern, self.entries) if p]
        # Longest entries first, so "motherfucker" is one hit rather than "fucker" inside it.
        self._regex = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None

    def find(self, text: str) -> list[str]:
        """The listed words and phrases in `text`, as written there."""
        if self._regex is None or not text:
            return []
        return [m.group(0) for m in self._regex.finditer(text)]

    def apply(self, text: str) -> Moderated:
        """`text` after the show's action: unchanged when nothing matched."""
        hits = tuple(self.find(text))
        if not hits:
            return Moderated(text=text)
        if self.cfg.action == "drop":
            return Moderated(text="", hits=hits, dropped=True)
        if self.cfg.action == "replace":
            assert self._regex is not None
            return Moderated(text=self._regex.sub(self.cfg.replacement, text), hits=hits)
        return Moderated(text=text, hits=hits)

    def apply_all(self, *texts: str) -> tuple[list[str], tuple[str, ...], bool]:
        """Several renderings of one utterance (the visitor's words, the English prompt) as
        one decision: dropped if any of them must be dropped; the hits of all of them, each
        once (an English visitor's words are both renderings)."""
        results = [self.apply(t) for t in texts]
        hits = tuple(dict.fromkeys(h for r in results for h in r.hits))
        dropped = any(r.dropped for r in results)
        return [("" if dropped else r.text) for r in results], hits, dropped
