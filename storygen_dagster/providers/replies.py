"""What real chat models send back, turned into a validated pydantic value: `<think>` blocks,
markdown fences, chatter around the JSON, the answer only in `reasoning_content`, truncation
(`finish_reason: length`) and refusals. Also the strict JSON schema sent as response_format."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from storygen_dagster.providers.base import ProviderError

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class InvalidReply(ValueError):
    """The reply has no JSON object that validates; `raw` is what the model said."""

    def __init__(self, message: str, raw: str):
        super().__init__(message)
        self.raw = raw


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The pydantic schema adapted to OpenAI strict mode: every property required, no extra
    properties, no defaults. String length limits are not in strict mode's keyword subset, so
    they move into the description (pydantic still enforces them on the reply)."""
    schema = copy.deepcopy(model.model_json_schema())

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            node.pop("title", None)
            limits = [f"{k[:3]} {node.pop(k)}" for k in ("minLength", "maxLength") if k in node]
            if limits:
                note = f"{' and '.join(limits)} characters"
                node["description"] = (
                    f"{node['description']}; {note}" if "description" in node else note
                )
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(schema)
    return schema


def reply_text(response: dict[str, Any]) -> tuple[str, str | None]:
    """(text to parse, finish_reason); raises ProviderError for refusals and empty replies."""
    try:
        choice = response["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"chat reply has no choices: {str(response)[:200]}") from exc
    finish = choice.get("finish_reason")
    if message.get("refusal"):
        raise ProviderError(f"the model refused: {str(message['refusal'])[:300]}")
    if finish == "content_filter":
        raise ProviderError("the reply was blocked by the provider's content filter")
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not _THINK.sub("", content).strip():
        # Reasoning models behind some servers put the whole answer in reasoning_content.
        content = message.get("reasoning_content") or message.get("reasoning") or content
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


def parse_reply(response: dict[str, Any], model: type[BaseModel]) -> BaseModel:
    text, finish = reply_text(response)
    candidates = json_candidates(text)
    if finish == "length" and not any(_valid(model, c) for c in candidates):
        raise ProviderError(
            "the reply was cut off at the token limit (finish_reason=length); raise "
            "STORYGEN_LLM_MAX_TOKENS"
        )
    if not candidates:
        raise InvalidReply("the reply contains no JSON object", text)
    errors = []
    for candidate in candidates:
        try:
            return model.model_validate(candidate)
        except ValidationError as exc:
            errors.append((len(json.dumps(candidate)), exc))
    # The longest object is the one the model meant as its answer.
    worst = max(errors, key=lambda e: e[0])[1]
    raise InvalidReply(_describe(worst), text)


def _valid(model: type[BaseModel], candidate: Any) -> bool:
    try:
        model.model_validate(candidate)
    except ValidationError:
        return False
    return True


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:12]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
