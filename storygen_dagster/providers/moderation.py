"""Content moderation through an OpenAI-compatible `POST {base}/moderations` endpoint (OpenAI,
or any server speaking the same API), used by the content_safety check besides the word list
when STORYGEN_MODERATION_URL is set. Same HTTP layer as the providers: timeouts, retries on
429/5xx only, a rate limit, the key redacted from every error."""

from __future__ import annotations

from collections.abc import Mapping

from storygen_dagster.providers.base import ProviderError
from storygen_dagster.providers.http import ProviderHttp
from storygen_dagster.settings import Settings


class Moderation:
    def __init__(self, http: ProviderHttp, model: str):
        self.http, self.model = http, model

    async def flagged(self, texts: Mapping[str, str | None]) -> list[str]:
        """'where: flagged (category, ...)' for every text the endpoint flags."""
        named = [(where, text) for where, text in texts.items() if text]
        if not named:
            return []
        body = {"model": self.model, "input": [text for _, text in named]}
        async with self.http.client() as client:
            result = await self.http.post_json(client, "moderations", body)
        try:
            verdicts = result.body["results"]
        except (KeyError, TypeError) as exc:
            raise ProviderError(
                f"moderation reply has no results: {str(result.body)[:200]}"
            ) from exc
        if len(verdicts) != len(named):
            raise ProviderError(
                f"moderation returned {len(verdicts)} results for {len(named)} inputs"
            )
        found = []
        for (where, _), verdict in zip(named, verdicts, strict=True):
            if verdict.get("flagged"):
                categories = sorted(k for k, v in (verdict.get("categories") or {}).items() if v)
                found.append(f"{where}: flagged ({', '.join(categories) or 'unspecified'})")
        return found


def build_moderation(
    settings: Settings, *, base_url: str, api_key: str | None, model: str
) -> Moderation:
    """The moderation endpoint at `base_url` (its HTTP limits and timeouts from the settings)."""
    http = ProviderHttp(
        provider="moderation",
        base_url=base_url,
        api_key=api_key,
        rpm=settings.llm_rpm,
        read_timeout_s=settings.llm_read_timeout_s,
        settings=settings,
        limit_name="moderation",
    )
    return Moderation(http, model)
