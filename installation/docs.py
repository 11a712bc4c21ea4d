"""Generates the README's reference sections from the code that enforces them, so the two
cannot disagree. `python -m installation.docs` rewrites them; a test checks they are current."""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .control.addresses import address_table_markdown
from .core.events import stages_table_markdown
from .show import PROJECT_ROOT, Show

README = PROJECT_ROOT / "README.md"


def _type_name(annotation: Any) -> str:
    """A reader's name for a field's type: "integer", "one of "a", "b"", "list of strings"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # a checked type (a template, a crop): named by what it holds
        return _type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is list:
        return f"list of {_type_name(args[0])}s" if args else "list"
    if origin is dict:
        return "table"
    name = getattr(annotation, "__name__", str(annotation))
    return {"str": "string", "int": "integer", "float": "number", "bool": "true/false"}.get(name, name)


def _constraints(info) -> str:
    parts = []
    for meta in info.metadata:
        for key, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("multiple_of", "multiple of"),
                          ("max_length", "at most")):
            value = getattr(meta, key, None)
            if value is not None:
                parts.append(f"{word} {value} characters" if key == "max_length" else f"{word} {value}")
    return ", ".join(parts)


def _model_table(model: type[BaseModel]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        kind = _type_name(info.annotation)
        limits = _constraints(info)
        if limits:
            kind = f"{kind} ({limits})"
        if info.is_required():
            default = "required"
        else:
            default = "`" + (str(info.default).lower() if isinstance(info.default, bool)
                             else repr(info.default).replace("'", '"')) + "`"
            default = "unset" if info.default is None else default
        desc = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {kind.replace('|', ' or ')} | {default} | {desc} |")
    return lines


def show_reference() -> str:
    lines = []
    for section, field in Show.model_fields.items():
        if field.exclude:
            continue
        model = field.annotation
        item = typing.get_args(model)[0] if typing.get_origin(model) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):  # [[cues]], [[streams]], [[outputs]]
            lines.append(f"**`[[{section}]]`**: {field.description}\n")
            lines.extend(_model_table(item))
            lines.append("")
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            lines.append(f"**`[{section}]`**: {field.description}\n")
            continue
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


SECTIONS: dict[str, Callable[[], str]] = {
    "show-reference": show_reference,
    "osc-addresses": address_table_markdown,
    "event-stages": stages_table_markdown,
}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the markers <!-- {name}:start --> / <!-- {name}:end -->")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
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
