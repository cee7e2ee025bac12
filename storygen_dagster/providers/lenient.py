"""Liberal in what we accept from models: a parsed reply is normalized into the shape of the
strict contract before pydantic validates it. Unknown keys at any level are dropped (and
counted), keys spelled in another case are matched, numbers given as strings and strings given
as numbers are coerced, a lone value where a list belongs is wrapped, scenes that are
consecutive but numbered from 0 or out of order are renumbered, and values the request pins are
filled in or given their exact spelling. What cannot be normalized is left for validation to
reject (and for the repair attempt)."""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from storygen_dagster.domain.reply_rules import NO_RULES, ReplyRules

_INT = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass
class Normalized:
    value: Any
    dropped: list[str] = field(default_factory=list)  # paths of unknown keys that were dropped
    fixes: list[str] = field(default_factory=list)  # what else was changed, for the record


def normalize(candidate: Any, model: type[BaseModel], rules: ReplyRules = NO_RULES) -> Normalized:
    out = Normalized(value=None)
    value = _walk(candidate, model, "", out)
    if isinstance(value, dict):
        _renumber_scenes(value, out)
        _count_follows_scenes(value, out)
        _apply_rules(value, rules, out)
    out.value = value
    return out


def _unwrap(tp: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _walk(value: Any, tp: Any, path: str, out: Normalized) -> Any:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _walk_model(value, tp, path, out)
    if get_origin(tp) is list:
        (item,) = get_args(tp) or (Any,)
        if isinstance(value, str | dict | int | float) and not isinstance(value, bool):
            out.fixes.append(f"{path or '(root)'}: a single value wrapped in a list")
            value = [value]
        if isinstance(value, list):
            return [_walk(v, item, f"{path}[{i}]", out) for i, v in enumerate(value)]
        return value
    if tp is int and isinstance(value, str) and _INT.match(value.strip()):
        return int(float(value.strip()))
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp is float and isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value.strip())
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return value


def _walk_model(value: Any, model: type[BaseModel], path: str, out: Normalized) -> Any:
    if not isinstance(value, dict):
        return value
    fields = model.model_fields
    by_key = {_key(name): name for name in fields}
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in fields else by_key.get(_key(str(key)))
        if name is None or name in result:
            out.dropped.append(_join(path, key))
            continue
        if name != key:
            out.fixes.append(f"{_join(path, key)} read as {name}")
        if item is None and not fields[name].is_required():
            continue  # null for an optional field: its default applies
        result[name] = _walk(item, fields[name].annotation, _join(path, name), out)
    return result


def _renumber_scenes(value: dict, out: Normalized) -> None:
    """Scenes numbered 0..n-1 or 1..n in any order become 1..n in that order; scenes with no
    numbers at all are numbered by position. Gaps and duplicates are left for the repair."""
    scenes = value.get("scenes")
    if not isinstance(scenes, list) or not scenes or not all(isinstance(s, dict) for s in scenes):
        return
    numbers = [s.get("scene_number") for s in scenes]
    expected = list(range(1, len(scenes) + 1))
    if numbers == expected:
        return
    if all(n is None for n in numbers):
        out.fixes.append("scenes numbered by position")
        order = list(range(len(scenes)))
    elif all(isinstance(n, int) for n in numbers) and sorted(numbers) in (
        list(range(len(scenes))),
        expected,
    ):
        out.fixes.append(f"scenes renumbered from {numbers}")
        order = sorted(range(len(scenes)), key=lambda i: numbers[i])
    else:
        return
    value["scenes"] = [
        {**scenes[i], "scene_number": n} for n, i in zip(expected, order, strict=True)
    ]


def _apply_rules(value: dict, rules: ReplyRules, out: Normalized) -> None:
    for path, wanted in rules.values.items():
        *parents, leaf = path.split(".")
        node: Any = value
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        got = node.get(leaf)
        if got is None:
            node[leaf] = wanted
            out.fixes.append(f"{path} filled in from the request")
        elif (
            isinstance(got, str)
            and isinstance(wanted, str)
            and got != wanted
            and got.strip().casefold() == wanted.casefold()
        ):
            node[leaf] = wanted


def _count_follows_scenes(value: dict, out: Normalized) -> None:
    """story_meta.scene_count restates len(scenes): the scenes written are the truth (storage
    keeps the same rule). Whether that count is what the request asked for is a rule."""
    meta, scenes = value.get("story_meta"), value.get("scenes")
    if (
        isinstance(meta, dict)
        and isinstance(scenes, list)
        and meta.get("scene_count") != len(scenes)
    ):
        out.fixes.append(f"story_meta.scene_count set to the {len(scenes)} scenes written")
        meta["scene_count"] = len(scenes)
