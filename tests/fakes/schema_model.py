"""Models as they really answer, for the loopback fake: a "schema-only" model that writes
whatever the JSON schema it is sent allows and ignores the prompt (a constrained decoder on
vLLM, Ollama or Together with a small model), and the quirks hosts add to replies (stray keys,
numbers as strings, scenes numbered from 0 or shuffled, a scene too few)."""

from __future__ import annotations

import random
import re
from typing import Any

WORDS = (
    "the little fox hopped over a sunny hill and found a bright red kite near the old oak "
    "tree while soft clouds drifted across the sky and a gentle breeze sang in the grass"
).split()

QUIRKS = ("extra_keys", "string_numbers", "zero_based", "shuffled", "wrapped", "camel_case")


def _limit(node: dict) -> int | None:
    found = re.search(r"max (\d+) characters", node.get("description", ""))
    return int(found.group(1)) if found else None


def _text(rng: random.Random, limit: int | None) -> str:
    limit = limit or 400
    # A model reads "max 80 characters" as a few words and "max 2000" as a few sentences.
    words = rng.randint(1, 6) if limit <= 120 else rng.randint(12, 40)
    text = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."
    return text[: max(1, limit - 1)].strip() or "Sun"


def reply_from_schema(schema: dict, rng: random.Random, index: int | None = None) -> Any:
    """A value the schema allows, chosen freely where it leaves a choice. Integers inside an
    array item count up from their minimum (`index`), as a model writing a list does."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return {
            name: reply_from_schema(prop, rng, index)
            for name, prop in schema.get("properties", {}).items()
        }
    if kind == "array":
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", max(low, 3))
        return [reply_from_schema(schema["items"], rng, i) for i in range(rng.randint(low, high))]
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 100)
        return rng.randint(low, high) if index is None else min(high, low + index)
    if kind == "number":
        return rng.uniform(schema.get("minimum", 0), schema.get("maximum", 1))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        return _text(rng, _limit(schema))
    if "anyOf" in schema:
        return reply_from_schema(schema["anyOf"][0], rng, index)
    raise ValueError(f"the fake cannot write a value for {schema}")


def conform(value: Any, schema: dict) -> Any:
    """What a strict-mode host guarantees whatever the model meant: one-value enums hold."""
    if isinstance(schema.get("enum"), list) and len(schema["enum"]) == 1:
        return schema["enum"][0]
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        return {k: conform(v, props[k]) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and schema.get("type") == "array":
        return [conform(v, schema["items"]) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def add_quirks(value: Any, quirks: set[str], rng: random.Random, depth: int = 0) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _camel(key) if "camel_case" in quirks and depth > 0 else key
            out[name] = add_quirks(item, quirks, rng, depth + 1)
        if "extra_keys" in quirks:
            out["notes" if depth == 0 else f"extra_{depth}"] = "added by the model, not asked for"
        scenes = out.get("scenes")
        if depth == 0 and isinstance(scenes, list):
            key = "sceneNumber" if "camel_case" in quirks else "scene_number"
            if "zero_based" in quirks:
                for scene in scenes:
                    scene[key] = int(scene[key]) - 1
                    if "string_numbers" in quirks:
                        scene[key] = str(scene[key])
            if "shuffled" in quirks:
                rng.shuffle(scenes)
        if depth == 0 and "wrapped" in quirks:
            return {"response": out}
        return out
    if isinstance(value, list):
        return [add_quirks(v, quirks, rng, depth + 1) for v in value]
    if "string_numbers" in quirks and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value
