"""Generates the README's reference sections from the code that enforces them, so the two
cannot disagree. `python -m installation.docs` rewrites them; a test checks they are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from .show import PROJECT_ROOT, Show

README = PROJECT_ROOT / "README.md"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    text = str(annotation) if text in ("Literal", "Union") else text
    text = text.replace("typing.", "").replace("Literal", "one of ").replace("Union[int, str]", "int or string")
    return {"str": "string", "int": "integer", "float": "number", "bool": "true/false"}.get(text, text)


def _constraints(info) -> str:
    parts = []
    for meta in info.metadata:
        for key, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("multiple_of", "multiple of")):
            value = getattr(meta, key, None)
            if value is not None:
                parts.append(f"{word} {value}")
    return ", ".join(parts)


def show_reference() -> str:
    lines = []
    for section, field in Show.model_fields.items():
        if field.exclude:
            continue
        model: type[BaseModel] = field.annotation  # type: ignore[assignment]
        lines.append(f"**`[{section}]`**\n")
        lines.append("| key | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for name, info in model.model_fields.items():
            kind = _type_name(info.annotation)
            limits = _constraints(info)
            if limits:
                kind = f"{kind} ({limits})"
            default = repr(info.default).replace("'", '"')
            if isinstance(info.default, bool):
                default = str(info.default).lower()
            desc = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {kind.replace('|', ' or ')} | `{default}` | {desc} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


SECTIONS: dict[str, Callable[[], str]] = {"show-reference": show_reference}


def _osc_table() -> str:
    from .osc import address_table_markdown

    return address_table_markdown()


try:  # the OSC table joins once the server module exists
    from . import osc as _osc  # noqa: F401

    if hasattr(_osc, "address_table_markdown"):
        SECTIONS["osc-addresses"] = _osc_table
except Exception:
    pass


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the markers <!-- {name}:start --> / <!-- {name}:end -->")
        text = pattern.sub(lambda m: m.group(1) + make() + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print("README.md reference sections are stale: run python -m installation.docs", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    print("README.md reference sections rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
