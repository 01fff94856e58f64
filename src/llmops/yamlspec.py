"""YAML documents validated by pydantic models, with errors that name the key and its line.

Recipes, alert rules and other declarative files share this: the YAML is composed once for the node marks
(line numbers) and loaded once for the data; every validation error becomes ``line N: path: message``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llmops.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def node_at(node: yaml.Node | None, loc: tuple[int | str, ...], *, key: bool = False) -> yaml.Node | None:
    """The YAML node at ``loc`` (as far as it can be followed; the key node of the last part if ``key``), to
    report its line."""
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if pair is None:
                return node
            node = pair[0] if key and i == len(loc) - 1 else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def loc_path(loc: tuple[int | str, ...]) -> str:
    """``("rules", 0, "window")`` as ``rules[0].window``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def line_of(root: yaml.Node | None, loc: tuple[int | str, ...], *, key: bool = False) -> str:
    node = node_at(root, loc, key=key)
    return f"line {node.start_mark.line + 1}: " if node is not None else ""


def compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for lines) and the data of a YAML text; ``InvalidInput`` naming the line of a syntax error."""
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidInput(f"{source} is not valid YAML{line}: {exc.problem}") from exc


def parse_model(text: str, model: type[M], source: str) -> M:
    """``model`` from YAML text; ``InvalidInput`` naming every problem with its line and path."""
    root, data = compose(text, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            path = loc_path(loc) or source
            if error["type"] == "extra_forbidden":
                problems.append(f"{line_of(root, loc, key=True)}{path}: unknown key {loc[-1]!r}")
                continue
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{line_of(root, loc)}{path}: {message}")
        raise InvalidInput(f"{source} is invalid:\n  " + "\n  ".join(problems), details={"problems": problems}) from exc
