"""Any OpenAI-compatible chat endpoint (OpenAI, Together, OpenRouter, Ollama, vLLM):
`POST {base}/chat/completions` with a strict JSON schema from the pydantic model (the request's
pins written in), cached and ledgered per call, with one repair attempt that shows the model
what is wrong: its validation error or how it misses the request."""

from __future__ import annotations

import json
import logging
from typing import Any

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.prompts import RenderedPrompt
from storygen_dagster.domain.reply_rules import NO_RULES, ReplyRules
from storygen_dagster.providers.base import CallContext, Generated, ProviderError, StoryLLM, T
from storygen_dagster.providers.calls import CallOutcome, ProviderCalls, chat_cost
from storygen_dagster.providers.replies import InvalidReply, Parsed, parse_reply, strict_schema

log = logging.getLogger("storygen.providers")

ENDPOINT = "chat/completions"
SYSTEM = (
    "You write gentle, age-appropriate children's picture books. Answer with exactly one JSON "
    "object that matches the JSON schema '{name}'. No prose, no markdown."
)


# A picture's input tokens, at most (OpenAI's high detail for a 1024x768 picture: 765; a
# 2048-side picture ~1105): what the budget check assumes before the reply says.
IMAGE_TOKENS = 1105


def _with_images(body: dict, images: dict[str, str]) -> dict:
    """The request as sent: each picture marker in a content part replaced by its data URI."""

    def part(p: Any) -> Any:
        if isinstance(p, dict) and p.get("type") == "image_url":
            url = p["image_url"]["url"]
            return {**p, "image_url": {**p["image_url"], "url": images.get(url, url)}}
        return p

    messages = [
        {**m, "content": [part(p) for p in m["content"]]} if isinstance(m["content"], list) else m
        for m in body["messages"]
    ]
    return {**body, "messages": messages}


def _count(value: Any, estimate: int) -> int:
    """A usage count, or the estimate when it is missing, zero or not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    return estimate


def _repair_messages(bad: InvalidReply) -> list[dict[str, str]]:
    """Show the model its reply and exactly what is wrong with it."""
    what = "does not fit the request" if bad.kind == "request" else "did not match the schema"
    return [
        {"role": "assistant", "content": bad.raw[:8000]},
        {
            "role": "user",
            "content": f"That reply {what}: {bad}. Reply with only the corrected JSON object.",
        },
    ]


class OpenAIChatLLM(StoryLLM):
    provider_name = "openai"

    def __init__(self, calls: ProviderCalls, *, max_tokens: int, temperature: float):
        self.calls = calls
        self.model = calls.model
        self.max_tokens = max_tokens
        self.temperature = temperature

    def _body(
        self, messages: list[dict], response_model: type[T], rules: ReplyRules
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": response_model.__name__,
                    "strict": True,
                    "schema": strict_schema(response_model, rules),
                },
            },
        }

    def _prompt_tokens(self, body: dict, images: int) -> int:
        # Upper bound: ~4 characters a token, IMAGE_TOKENS a picture.
        chars = len(json.dumps(body["messages"])) + len(json.dumps(body["response_format"]))
        return chars // 4 + images * IMAGE_TOKENS

    def _estimate(self, body: dict, images: int) -> float:
        # Upper bound: the prompt, and the whole max_tokens out.
        return chat_cost(self.calls.price, self._prompt_tokens(body, images), self.max_tokens)

    async def _call(
        self, ctx: CallContext, client, body: dict, images: dict[str, str] | None = None
    ) -> CallOutcome:
        wire = _with_images(body, images) if images else None
        out = await self.calls.fetch(
            ctx,
            client,
            ENDPOINT,
            body,
            estimate_usd=self._estimate(body, len(images or {})),
            wire=wire,
            tokens=self._prompt_tokens(body, len(images or {})) + self.max_tokens,
        )
        if not out.cached:
            # Any JSON may come back (the reply's shape is checked when it is parsed): this
            # paid call is counted whatever it is.
            reply = out.response if isinstance(out.response, dict) else {}
            usage = reply.get("usage")
            if not isinstance(usage, dict):
                usage = {}
            chars_in = len(json.dumps(body["messages"]))
            chars_out = len(json.dumps(reply.get("choices", out.response)))
            # Some servers omit usage: estimate rather than record a free call.
            out.prompt_tokens = _count(usage.get("prompt_tokens"), chars_in // 4)
            out.completion_tokens = _count(usage.get("completion_tokens"), chars_out // 4)
            out.cost_usd = chat_cost(self.calls.price, out.prompt_tokens, out.completion_tokens)
        return out

    async def _generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        ctx: CallContext,
        *,
        rules: ReplyRules = NO_RULES,
        **inputs: Any,
    ) -> Generated[T]:
        messages = [
            {"role": "system", "content": SYSTEM.format(name=response_model.__name__)},
            {"role": "user", "content": prompt.text},
        ]
        return await self.complete(ctx, prompt, messages, response_model, rules)

    async def complete(
        self,
        ctx: CallContext,
        prompt: RenderedPrompt,
        messages: list[dict],
        response_model: type[T],
        rules: ReplyRules = NO_RULES,
        *,
        images: dict[str, str] | None = None,
    ) -> Generated[T]:
        """One validated reply to `messages`, with one repair attempt. `images`: marker ->
        data URI, the pictures the messages name by marker (keyed and ledgered by the marker,
        sent as the data URI)."""
        made: list[tuple[CallOutcome, dict]] = []
        try:
            return await self._complete(ctx, prompt, messages, response_model, rules, made, images)
        except Exception as exc:
            await self.calls.record_unsettled(ctx, ENDPOINT, made, exc)
            raise

    async def _complete(
        self,
        ctx: CallContext,
        prompt: RenderedPrompt,
        messages: list[dict],
        response_model: type[T],
        rules: ReplyRules,
        made: list[tuple[CallOutcome, dict]],
        images: dict[str, str] | None,
    ) -> Generated[T]:
        """complete(), each call made added to `made` as soon as it is paid for."""
        body = self._body(messages, response_model, rules)
        async with self.calls.http.client() as client:
            first = await self._call(ctx, client, body, images)
            made.append((first, body))
            try:
                parsed = self._parse(ctx, first, response_model, rules)
            except InvalidReply as bad:
                await self._record(ctx, first, body, "failed", f"invalid reply: {bad}")
                repair = self._body([*messages, *_repair_messages(bad)], response_model, rules)
                second = await self._call(ctx, client, repair, images)
                made.append((second, repair))
                try:
                    parsed = self._parse(ctx, second, response_model, rules)
                except InvalidReply as again:
                    await self._record(ctx, second, repair, "failed", f"invalid reply: {again}")
                    raise ProviderError(
                        f"{ctx.asset} reply for story {ctx.story_id} failed validation after "
                        f"one repair: {again}"
                    ) from None
                except ProviderError as exc:
                    await self._record(ctx, second, repair, "failed", str(exc))
                    raise
                await self._record(ctx, second, repair, "succeeded")
                await self.calls.mark_succeeded(first)
                prov = self._provenance(prompt, parsed, first, second)
                return Generated(value=parsed.value, provenance=prov)  # type: ignore[arg-type]
            except ProviderError as exc:  # refusal, truncation, empty reply
                await self._record(ctx, first, body, "failed", str(exc))
                raise
        await self._record(ctx, first, body, "succeeded")
        prov = self._provenance(prompt, parsed, first)
        return Generated(value=parsed.value, provenance=prov)  # type: ignore[arg-type]

    def _parse(
        self, ctx: CallContext, out: CallOutcome, response_model: type[T], rules: ReplyRules
    ) -> Parsed:
        parsed = parse_reply(out.response, response_model, rules)
        if parsed.dropped or parsed.fixes:
            log.debug(
                "normalized %s reply for story %s: dropped %s; %s",
                ctx.asset,
                ctx.story_id,
                parsed.dropped,
                parsed.fixes,
                extra={"story_id": ctx.story_id, "asset": ctx.asset},
            )
        return parsed

    async def _record(
        self, ctx: CallContext, out: CallOutcome, body: dict, status: str, error: str | None = None
    ) -> None:
        await self.calls.record(ctx, out, ENDPOINT, body, status=status, error=error)

    def _provenance(
        self, prompt: RenderedPrompt, parsed: Parsed, *calls: CallOutcome
    ) -> Provenance:
        return Provenance(
            provider=self.provider_name,
            model=self.model,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            prompt_sha256=prompt.sha256,
            latency_ms=round(sum(c.latency_ms for c in calls), 3),
            prompt_tokens=sum(c.prompt_tokens for c in calls),
            completion_tokens=sum(c.completion_tokens for c in calls),
            cost_usd=round(sum(c.cost_usd for c in calls), 8),
            attempts=sum(c.attempts for c in calls),
            cached=all(c.cached for c in calls),
            repairs=len(calls) - 1,
            dropped_keys=len(parsed.dropped),
            reply_fixes=len(parsed.fixes),
        )
