"""Scene words: what the vision stage sees, as the words a show's template paints.

A `Scene` (core/messages.py) becomes the template values {people}, {colours}, {light},
{motion} and {scene}, each passed through the show's own vocabulary ([scene] vocabulary).
`fill_template` then writes the prompt; a comma-separated clause of the template whose
placeholder is empty is left out whole, unless the show says what an empty placeholder
becomes ([scene] empty), so "{speech}, {people} figures in {colours}" before anyone speaks
reads "two figures in red and blue", never ", two figures in red and blue".
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from installation.core.messages import Scene
from installation.show import SCENE_WORDS, SceneWordsConfig

# People counts as words a prompt reads naturally; above the table, "many".
_COUNT_WORDS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class SceneWords:
    """The scene's template values, already in the show's vocabulary ("" = nothing seen)."""

    people: str = ""
    colours: str = ""
    light: str = ""
    motion: str = ""
    scene: str = ""

    def values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SCENE_WORDS}

    def summary(self) -> str:
        """One line for status and the HUD: "2 people · red, blue · bright · calm"."""
        parts = [p for p in (self.people and f"{self.people} people", self.colours, self.light, self.motion) if p]
        return " · ".join(parts)


def count_word(n: int) -> str:
    return _COUNT_WORDS[n] if 0 <= n < len(_COUNT_WORDS) else "many"


def scene_words(scene: Scene | None, cfg: SceneWordsConfig) -> SceneWords:
    """The template values for `scene` in the show's vocabulary; all empty without a scene."""
    if scene is None:
        return SceneWords()
    vocab = cfg.vocabulary

    def word(kind: str, key: str, default: str) -> str:
        return vocab.get(kind, {}).get(key, default)  # type: ignore[call-overload]

    # The show may name a count by its number ("2") or its word ("two", "many").
    spelled = count_word(scene.people)
    people = word("people", str(scene.people), word("people", spelled, spelled))
    named = [word("colours", c, c) for c in scene.colours[: cfg.max_colours]]
    colours = " and ".join(n for n in named if n)
    return SceneWords(people=people, colours=colours, light=word("light", scene.light, scene.light),
                      motion=word("motion", scene.motion, scene.motion), scene=scene.caption)


def fill_template(template: str, values: Mapping[str, str], empty: Mapping[str, str] | None = None) -> str:
    """The template with its placeholders filled. A placeholder with no value takes the show's
    `empty` word for it; with none, the comma-separated clause that holds it is left out."""
    empty = empty or {}
    filled = {name: (values.get(name) or empty.get(name, "")).strip() for name in _placeholders(template)}
    clauses = []
    for clause in _split_clauses(template):
        names = _placeholders(clause)
        if any(not filled[name] for name in names):
            continue
        clauses.append(clause.format(**{name: filled[name] for name in names}).strip())
    return re.sub(r"\s+", " ", ", ".join(c for c in clauses if c)).strip()


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _split_clauses(template: str) -> list[str]:
    """The template cut at its top-level commas (never inside a placeholder)."""
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(template):
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            clauses.append(template[start:i])
            start = i + 1
    clauses.append(template[start:])
    return clauses
