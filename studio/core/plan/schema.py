"""Reading recipe text safely and type-checking it field by field before any config is built.

A recipe may come from anywhere, so the text is parsed under limits: its size, its nesting
depth and the size of its YAML alias expansion (a 'billion laughs' document is a few hundred
bytes; a self-referencing anchor is infinite). Every field is then checked against the types
its technique config declares, and every problem is reported with its path
(`rules[2].prune.amount: expected a number, got 'abc'`). Messages never echo long values whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import reprlib
import types
import typing
from typing import Any

from studio.core.base.errors import StudioError

MAX_BYTES = 1_000_000      # a recipe of 10k exact layer names is well below this
MAX_DEPTH = 24             # recipes nest four levels; the rest is settings
MAX_NODES = 200_000        # values after alias expansion
MAX_INT = 2**31 - 1        # no config counts beyond this (group sizes, ranks, epochs)
MAX_STRING = 1000          # layer patterns and option names
SHOWN = 60                 # characters of a value echoed in a message

_repr = reprlib.Repr()
_repr.maxstring = SHOWN
_repr.maxother = SHOWN
_repr.maxlist = _repr.maxdict = _repr.maxtuple = 4
_repr.maxlevel = 2


def short(value: Any) -> str:
    """A value for a message: repr, cut to about SHOWN characters with '...'."""
    text = _repr.repr(value)
    return text if len(text) <= SHOWN + 10 else text[:SHOWN] + "..."


# --- text → data ----------------------------------------------------------------------

def parse_text(text: str, fmt: str) -> Any:
    """YAML (safe loader) or JSON under the limits above; StudioError otherwise."""
    if len(text) > MAX_BYTES:
        raise StudioError(f"The recipe is {len(text):,} characters; recipes are limited to {MAX_BYTES:,}.")
    if _bracket_depth(text) > 2 * MAX_DEPTH:  # cheap, before a parser recurses thousands deep
        raise StudioError(f"The recipe nests deeper than {MAX_DEPTH} levels.")
    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            data = _load_yaml(text)
    except RecursionError:
        raise StudioError(f"The recipe nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # json.JSONDecodeError and a few constructor errors
        raise StudioError(f"The recipe is not valid {fmt.upper()}: {_first_line(exc)}") from None
    _check_depth(data)
    return data


def _bracket_depth(text: str) -> int:
    """Deepest flow nesting ([ and {), quotes ignored: an upper bound good enough to refuse
    `[[[[...]]]]` before parsing; block nesting is bounded by the parser's recursion limit."""
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as exc:
        raise StudioError(f"The recipe is not valid YAML: {_first_line(exc)}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise StudioError(f"The recipe is not valid YAML: {_first_line(exc)}") from None
    finally:
        loader.dispose()


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_yaml_graph(root: Any) -> None:
    """Before anything is constructed: no cycles, bounded depth and bounded expanded size.
    Iterative, so a document nested thousands deep cannot exhaust the stack here."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise StudioError(f"The recipe expands to more than {MAX_NODES:,} values "
                                  "(YAML aliases repeated inside aliases?); refusing to read it.")
            continue
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            raise StudioError(f"The recipe nests deeper than {MAX_DEPTH} levels.")
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) in on_path:
                raise StudioError("The recipe refers to itself (a YAML anchor used inside its own value).")
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _check_depth(data: Any) -> None:
    stack = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise StudioError(f"The recipe nests deeper than {MAX_DEPTH} levels.")
        if count > MAX_NODES:
            raise StudioError(f"The recipe holds more than {MAX_NODES:,} values; refusing to read it.")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


# --- data → typed fields ------------------------------------------------------------------

def _allowed(hint: Any) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _allowed(arg))
    return (hint,) if isinstance(hint, type) else (object,)


def _describe(allowed: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    parts = [names.get(t, t.__name__) for t in allowed if not (t is int and float in allowed)]
    return " or ".join(dict.fromkeys(parts))


def field_problem(value: Any, hint: Any) -> str | None:
    """Why `value` does not fit the annotation `hint` (None when it does)."""
    allowed = _allowed(hint)
    if object in allowed:
        return None
    expected = f"expected {_describe(allowed)}, got {short(value)}"
    if value is None:
        return None if type(None) in allowed else expected
    if isinstance(value, bool):
        return None if bool in allowed else expected
    if isinstance(value, int):
        if int not in allowed and float not in allowed:
            return expected
        if abs(value) > MAX_INT:
            return f"{short(value)} is out of range (at most {MAX_INT:,})"
        return None
    if isinstance(value, float):
        if float not in allowed:
            return expected
        return None if math.isfinite(value) else f"expected a finite number, got {value}"
    if isinstance(value, str):
        if str not in allowed:
            return expected
        return None if len(value) <= MAX_STRING else f"a string of {len(value):,} characters is too long"
    return expected


def config_problems(config_type: type, data: Any, where: str) -> list[str]:
    """Unknown keys and wrongly typed values of one technique's settings, each with its path."""
    if not isinstance(data, dict):
        return [f"{where}: expected a mapping of settings (or null/false to exclude), got {short(data)}"]
    hints = typing.get_type_hints(config_type)
    names = [f.name for f in dataclasses.fields(config_type)]
    problems = []
    for key, value in data.items():
        if key not in names:
            problems.append(f"{where}: unknown key(s) {short(key) if not isinstance(key, str) else key[:SHOWN]}; "
                            f"allowed: {', '.join(sorted(names))}")
            continue
        problem = field_problem(value, hints.get(key, Any))
        if problem:
            problems.append(f"{where}.{key}: {problem}")
    return problems
