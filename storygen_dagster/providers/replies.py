"""What real chat models send back, turned into a validated pydantic value: `<think>` blocks,
markdown fences, chatter around the JSON, the answer only in `reasoning_content`, truncation
(`finish_reason: length`) and refusals, normalized (providers/lenient.py) and checked against what
the request asks for. Also the strict JSON schema sent as response_format, with the request's
pins written in."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from storygen_dagster.domain.reply_rules import NO_RULES, ReplyRules
from storygen_dagster.providers.base import ProviderError
from storygen_dagster.providers.lenient import normalize

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class InvalidReply(ValueError):
    """The reply has no JSON object that validates; `raw` is what the model said."""

    def __init__(self, message: str, raw: str, *, kind: str = "schema"):
        super().__init__(message)
        self.raw = raw
        self.kind = kind  # "schema": not the contract's shape; "request": not what was asked


def strict_schema(model: type[BaseModel], rules: ReplyRules = NO_RULES) -> dict[str, Any]:
    """The pydantic schema adapted to OpenAI strict mode: references inlined, every property
    required, no extra properties, no defaults. String length limits are not in strict mode's
    keyword subset, so they move into the description (pydantic still enforces them on the
    reply). What the request pins (`rules`) is written in: a constrained decoder follows the
    schema and may ignore the prompt."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = fix(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]]))
            extra = {k: fix(v) for k, v in node.items() if k != "$ref"}
            return {**target, **extra}
        node = {k: fix(v) for k, v in node.items() if k not in ("default", "title")}
        limits = [f"{k[:3]} {node.pop(k)}" for k in ("minLength", "maxLength") if k in node]
        if limits:
            note = f"{' and '.join(limits)} characters"
            node["description"] = (
                f"{node['description']}; {note}" if "description" in node else note
            )
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        return node

    schema = fix(raw)
    values, lengths = rules.schema_pins()
    for path, value in values.items():
        prop = _property(schema, path)
        for key in ("minimum", "maximum", "anyOf"):
            prop.pop(key, None)
        prop["enum"] = [value]
    for path, length in lengths.items():
        prop = _property(schema, path)
        prop["minItems"] = prop["maxItems"] = length
    return schema


def _property(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


def reply_text(response: Any) -> tuple[str, str | None]:
    """(text to parse, finish_reason); raises ProviderError for refusals, empty replies and
    replies of another shape (a JSON string, `choices` or `message` not objects: they were
    AttributeErrors, and the paid call was never ledgered)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise ProviderError(f"chat reply has no choices: {str(response)[:200]}")
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise ProviderError(f"chat reply's message is not an object: {str(message)[:200]}")
    finish = choice.get("finish_reason")
    if message.get("refusal"):
        raise ProviderError(f"the model refused: {str(message['refusal'])[:300]}")
    if finish == "content_filter":
        raise ProviderError("the reply was blocked by the provider's content filter")
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if not isinstance(content, str):
        raise ProviderError(f"chat reply's content is not text: {str(content)[:200]}")
    if not _THINK.sub("", content).strip():
        # Reasoning models behind some servers put the whole answer in reasoning_content.
        content = message.get("reasoning_content") or message.get("reasoning") or content
    if not isinstance(content, str):
        raise ProviderError(f"chat reply's content is not text: {str(content)[:200]}")
    if not content.strip():
        raise ProviderError(f"the model returned an empty reply (finish_reason={finish})")
    return content, finish


def json_candidates(text: str) -> list[Any]:
    """Every top-level JSON object in the text, in order: fenced blocks first, then objects
    found by scanning (chatter before and after is ignored)."""
    text = _THINK.sub("", text)
    if "</think>" in text:  # an opening tag the server swallowed
        text = text.rsplit("</think>", 1)[1]
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    found: list[Any] = []
    for source in sources:
        pos = source.find("{")
        while pos != -1:
            try:
                value, end = decoder.raw_decode(source, pos)
            except json.JSONDecodeError:
                pos = source.find("{", pos + 1)
                continue
            if isinstance(value, dict) and value not in found:
                found.append(value)
            pos = source.find("{", end)
    return found


@dataclass
class Parsed:
    value: BaseModel
    dropped: list[str]  # unknown keys removed from the reply
    fixes: list[str]  # other normalizations


def parse_reply(
    response: dict[str, Any], model: type[BaseModel], rules: ReplyRules = NO_RULES
) -> Parsed:
    """The first JSON object in the reply that, once normalized, validates against `model` and
    meets the request's `rules`. Otherwise InvalidReply saying what is wrong with the object the
    model meant as its answer (the longest), in words the repair message can show it."""
    text, finish = reply_text(response)
    candidates = _with_unwrapped(json_candidates(text))
    if not candidates:
        if finish == "length":
            raise _truncated()
        raise InvalidReply("the reply contains no JSON object", text)
    rejected: list[tuple[int, str]] = []
    for candidate in candidates:
        normalized = normalize(candidate, model, rules)
        counts = rules.length_problems(normalized.value)
        if counts:
            rejected.append((len(json.dumps(candidate)), f"request: {'; '.join(counts)}"))
            continue
        try:
            value = model.model_validate(normalized.value)
        except ValidationError as exc:
            rejected.append((len(json.dumps(candidate)), f"schema: {_describe(exc)}"))
            continue
        problems = rules.problems(value)
        if problems:
            rejected.append((len(json.dumps(candidate)), f"request: {'; '.join(problems)}"))
            continue
        return Parsed(value, normalized.dropped, normalized.fixes)
    if finish == "length":
        raise _truncated()
    kind, _, message = max(rejected, key=lambda r: r[0])[1].partition(": ")
    raise InvalidReply(message, text, kind=kind)


def _truncated() -> ProviderError:
    return ProviderError(
        "the reply was cut off at the token limit (finish_reason=length); raise "
        "STORYGEN_LLM_MAX_TOKENS"
    )


def _with_unwrapped(candidates: list[Any]) -> list[Any]:
    """Some hosts wrap the answer: {"StructuredStory": {...}} or {"response": {...}}."""
    found = list(candidates)
    for candidate in candidates:
        if len(candidate) == 1:
            inner = next(iter(candidate.values()))
            if isinstance(inner, dict) and inner not in found:
                found.append(inner)
    return found


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:12]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
