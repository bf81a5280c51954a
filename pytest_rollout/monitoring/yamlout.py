"""A small deterministic YAML writer for rule and test files, so rendering needs no PyYAML.

Keys keep the order they were built in; scalars are JSON strings and plain numbers (valid YAML
1.1 and 1.2 alike); multi-line strings (PromQL) become ``|-`` literal blocks so they stay readable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def number(value: float | int) -> str:
    """A number without exponent notation, which YAML 1.1 readers would take for a string."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} to YAML")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.15f}".rstrip("0")
    return text if float(text) == value else repr(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _block(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}{line}".rstrip() for line in text.split("\n")]


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.extend(_entry(f"{pad}{_key(key)}:", item, indent))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            inner = _entry("", item, indent)
            # The first line of the item carries the dash; the rest keep their indentation.
            first = inner[0]
            if first.startswith(" " * (indent + 2)):
                inner[0] = f"{pad}- {first[indent + 2 :]}"
            else:
                inner[0] = f"{pad}-{first}"
            out.extend(inner)
    else:
        out.append(f"{pad}{_scalar(value)}")
    return out


def _entry(head: str, item: Any, indent: int) -> list[str]:
    """``head`` (``key:``, or empty for a list item) followed by ``item`` at the right depth."""
    if isinstance(item, str) and "\n" in item:
        return [f"{head} |-", *_block(item, indent + 2)]
    if isinstance(item, Mapping | list | tuple):
        if not item:
            return [f"{head} {'{}' if isinstance(item, Mapping) else '[]'}"]
        return [head, *_lines(item, indent + 2)] if head else _lines(item, indent + 2)
    return [f"{head} {_scalar(item)}"]


def dump(document: Mapping[str, Any]) -> str:
    """The YAML text of ``document`` (a mapping), ending in one newline."""
    return "\n".join(_lines(document, 0)) + "\n"
