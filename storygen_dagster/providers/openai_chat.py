"""Any OpenAI-compatible chat endpoint (OpenAI, Together, OpenRouter, Ollama, vLLM):
`POST {base}/chat/completions` with a strict JSON schema from the pydantic model, cached and
ledgered per call, with one repair attempt that shows the model its validation error."""

from __future__ import annotations

import json
from typing import Any

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.prompts import RenderedPrompt
from storygen_dagster.providers.base import CallContext, Generated, ProviderError, StoryLLM, T
from storygen_dagster.providers.calls import CallOutcome, ProviderCalls, chat_cost
from storygen_dagster.providers.replies import InvalidReply, parse_reply, strict_schema

ENDPOINT = "chat/completions"
SYSTEM = (
    "You write gentle, age-appropriate children's picture books. Answer with exactly one JSON "
    "object that matches the JSON schema '{name}'. No prose, no markdown."
)


class OpenAIChatLLM(StoryLLM):
    provider_name = "openai"

    def __init__(self, calls: ProviderCalls, *, max_tokens: int, temperature: float):
        self.calls = calls
        self.model = calls.model
        self.max_tokens = max_tokens
        self.temperature = temperature

    def _body(self, messages: list[dict], response_model: type[T]) -> dict[str, Any]:
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
                    "schema": strict_schema(response_model),
                },
            },
        }

    def _estimate(self, body: dict) -> float:
        # Upper bound: ~4 characters a token in, the whole max_tokens out.
        chars = len(json.dumps(body["messages"])) + len(json.dumps(body["response_format"]))
        return chat_cost(self.calls.price, chars // 4, self.max_tokens)

    async def _call(self, ctx: CallContext, client, body: dict) -> CallOutcome:
        out = await self.calls.fetch(ctx, client, ENDPOINT, body, estimate_usd=self._estimate(body))
        if not out.cached:
            usage = (out.response or {}).get("usage") or {}
            chars_in = len(json.dumps(body["messages"]))
            chars_out = len(json.dumps(out.response.get("choices", [])))
            # Some servers omit usage: estimate rather than record a free call.
            out.prompt_tokens = int(usage.get("prompt_tokens") or chars_in // 4)
            out.completion_tokens = int(usage.get("completion_tokens") or chars_out // 4)
            out.cost_usd = chat_cost(self.calls.price, out.prompt_tokens, out.completion_tokens)
        return out

    async def _generate(
        self, prompt: RenderedPrompt, response_model: type[T], ctx: CallContext, **inputs: Any
    ) -> Generated[T]:
        messages = [
            {"role": "system", "content": SYSTEM.format(name=response_model.__name__)},
            {"role": "user", "content": prompt.text},
        ]
        body = self._body(messages, response_model)
        async with self.calls.http.client() as client:
            first = await self._call(ctx, client, body)
            try:
                value = self._parse(first, response_model)
            except InvalidReply as bad:
                await self._record(ctx, first, body, "failed", f"invalid reply: {bad}")
                repair = self._body(
                    [
                        *messages,
                        {"role": "assistant", "content": bad.raw[:8000]},
                        {
                            "role": "user",
                            "content": "That reply did not match the schema: "
                            f"{bad}. Reply with only the corrected JSON object.",
                        },
                    ],
                    response_model,
                )
                second = await self._call(ctx, client, repair)
                try:
                    value = self._parse(second, response_model)
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
                return Generated(value=value, provenance=self._provenance(prompt, first, second))
            except ProviderError as exc:  # refusal, truncation, empty reply
                await self._record(ctx, first, body, "failed", str(exc))
                raise
        await self._record(ctx, first, body, "succeeded")
        return Generated(value=value, provenance=self._provenance(prompt, first))

    def _parse(self, out: CallOutcome, response_model: type[T]) -> T:
        return parse_reply(out.response, response_model)  # type: ignore[return-value]

    async def _record(
        self, ctx: CallContext, out: CallOutcome, body: dict, status: str, error: str | None = None
    ) -> None:
        await self.calls.record(ctx, out, ENDPOINT, body, status=status, error=error)

    def _provenance(self, prompt: RenderedPrompt, *calls: CallOutcome) -> Provenance:
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
        )
