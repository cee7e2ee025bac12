"""Image generation over HTTP: Together (`POST {base}/images/generations` with model, prompt,
width, height, steps, seed, n=1, response_format) and the OpenAI images API (generations, or
with STORYGEN_IMAGE_REFERENCE=image_edit `POST {base}/images/edits`, multipart/form-data with
the character sheet as the input `image` for every scene). Both `b64_json`
and `url` results are accepted (a URL is downloaded with the same client); the bytes become a
PNG of the requested size that must decode and not be blank (filtered images come back black).

Cached images live in the object store under the same content-addressed key the scene_images
asset uses, and the ledger row keeps only that key: megabytes of base64 in a jsonb column
would bloat the table every SQL/dbt query reads, and the asset needs the object anyway. For the
same reason a scene's reference image (the character sheet, sent as a base64 data URI in
`image_url` or `reference_images`, or uploaded as the edit's file) is keyed and ledgered as its
sha256 and size only."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from typing import Any

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.images import ImageCheckError, inspect_png
from storygen_dagster.providers.base import (
    CallContext,
    GeneratedImage,
    ImageRejected,
    ImageService,
    ProviderError,
)
from storygen_dagster.providers.calls import CallOutcome, ProviderCalls, image_cost
from storygen_dagster.providers.reference import edit_request, png_data_uri
from storygen_dagster.storage.objects import ObjectStore

ENDPOINT = "images/generations"
EDITS = "images/edits"
# How each API can carry the character sheet (providers/reference.py resolves the setting).
TAKES = {"together": ("none", "image_url", "reference_images"), "openai": ("none", "image_edit")}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def to_png(data: bytes, width: int, height: int) -> bytes:
    """PNG bytes at exactly width x height (JPEG/WebP are converted; an OpenAI size that is not
    ours is cropped to fill, never stretched)."""
    from PIL import Image, ImageOps

    if data.startswith(PNG_MAGIC):
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.size == (width, height):
                    return data
        except Exception:  # inspect_png reports undecodable bytes
            return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            fitted = ImageOps.fit(img.convert("RGB"), (width, height))
            out = io.BytesIO()
            fitted.save(out, format="PNG")
            return out.getvalue()
    except Exception:  # let inspect_png name the problem
        return data


def _checked_png(data: bytes, width: int, height: int) -> bytes:
    png = to_png(data, width, height)
    inspect_png(png, width=width, height=height)
    return png


def openai_size(model: str, width: int, height: int) -> str:
    """The OpenAI preset with the orientation of width x height."""
    wide, tall = (
        ("1536x1024", "1024x1536")
        if model.startswith("gpt-image")
        else (
            "1792x1024",
            "1024x1792",
        )
    )
    if abs(width - height) < min(width, height) * 0.1:
        return "1024x1024"
    return wide if width > height else tall


class HttpImageService(ImageService):
    def __init__(
        self,
        calls: ProviderCalls,
        store: ObjectStore,
        *,
        flavor: str,
        steps: int,
        response_format: str,
        reference: str = "none",
    ):
        if flavor not in ("together", "openai"):
            raise ValueError(f"unknown image API flavor {flavor!r}")
        self.calls = calls
        self.store = store
        self.flavor = flavor
        self.provider_name = flavor
        self.model = calls.model
        self.steps = steps
        self.response_format = response_format
        if reference not in TAKES[flavor]:
            raise ValueError(f"{flavor} images cannot carry a reference as {reference!r}")
        self.reference = reference

    def _with_reference(
        self, body: dict, png: bytes | None
    ) -> tuple[str, dict, dict | None, dict | None]:
        """(the endpoint, the request as keyed and ledgered, the request as sent or None: the
        same, the files of a multipart request or None)."""
        if png is None or not self.uses_reference:
            return ENDPOINT, body, None, None
        if self.reference == "image_edit":
            return EDITS, *edit_request(body, png)
        marker, uri = png_data_uri(png)
        if self.reference == "image_url":
            return ENDPOINT, {**body, "image_url": marker}, {**body, "image_url": uri}, None
        keyed, sent = {**body, "reference_images": [marker]}, {**body, "reference_images": [uri]}
        return ENDPOINT, keyed, sent, None

    def _body(self, prompt: str, width: int, height: int, seed: int) -> dict[str, Any]:
        if self.flavor == "openai":
            # OpenAI takes only preset sizes (the reply is cropped to ours) and no seed or
            # steps; gpt-image models always answer b64_json and reject response_format.
            body = {
                "model": self.model,
                "prompt": prompt,
                "n": 1,
                "size": openai_size(self.model, width, height),
            }
            if not self.model.startswith("gpt-image"):
                body["response_format"] = self.response_format
            return body
        return {
            "model": self.model,
            "prompt": prompt,
            "width": width,
            "height": height,
            "steps": self.steps,
            "seed": seed,
            "n": 1,
            "response_format": self.response_format,
            "output_format": "png",
        }

    async def generate_image(
        self,
        prompt: str,
        ctx: CallContext,
        *,
        width: int,
        height: int,
        seed: int,
        reference: bytes | None = None,
    ) -> GeneratedImage:
        endpoint, body, wire, files = self._with_reference(
            self._body(prompt, width, height, seed), reference
        )
        facts = {"seed": seed, "reference": self.reference if wire else "none"}
        cost = image_cost(self.calls.price, width, height)
        async with self.calls.http.client() as client:
            out = await self.calls.fetch(
                ctx, client, endpoint, body, estimate_usd=cost, wire=wire, files=files
            )
            if out.cached:
                key = (out.response or {}).get("object_key")
                if key and await asyncio.to_thread(self.store.exists, key):
                    png = await asyncio.to_thread(self.store.get, key)
                    return self._result(png, out, prompt, width, height, facts)
                # The object is gone: pay for the image again rather than fail.
                fresh = CallContext(ctx.story_id, ctx.asset, ctx.scene_number, fresh=True)
                out = await self.calls.fetch(
                    fresh, client, endpoint, body, estimate_usd=cost, wire=wire, files=files
                )
            out.cost_usd = cost
            try:
                raw, source = await self._image_bytes(client, out)
                # Decoding and resizing (tens of ms of CPU per picture) in a worker thread,
                # where Pillow releases the GIL: in the event loop they held up every other
                # story's calls.
                png = await asyncio.to_thread(_checked_png, raw, width, height)
                key, sha256 = await asyncio.to_thread(self._put, ctx.story_id, png)
            except (ProviderError, ImageCheckError) as exc:
                summary = {"error": str(exc), "data": _summary(out.response)}
                await self.calls.record(
                    ctx, out, endpoint, body, status="failed", response=summary, error=str(exc)
                )
                rejected = ImageRejected if isinstance(exc, ImageCheckError) else ProviderError
                where = f"scene {ctx.scene_number}" if ctx.scene_number else ctx.asset
                raise rejected(
                    f"{self.flavor} image for story {ctx.story_id} {where}: {exc}"
                ) from None
            except Exception as exc:  # e.g. the object store refused the paid picture
                await self.calls.record_unsettled(ctx, endpoint, [(out, body)], exc)
                raise
        stored = {
            "object_key": key,
            "sha256": sha256,
            "source": source,
            "width": width,
            "height": height,
            "bytes": len(png),
        }
        await self.calls.record(ctx, out, endpoint, body, status="succeeded", response=stored)
        return self._result(png, out, prompt, width, height, facts)

    def _put(self, story_id: str, png: bytes) -> tuple[str, str]:
        key = self.store.key_for("images", story_id, png, ".png")
        self.store.put(key, png)
        return key, content_hash(png)

    async def _image_bytes(self, client, out: CallOutcome) -> tuple[bytes, str]:
        data = out.response.get("data") if isinstance(out.response, dict) else None
        item = data[0] if isinstance(data, list) and data else None
        if not isinstance(item, dict):  # e.g. "data": "..." was an AttributeError
            raise ProviderError(f"image reply has no data: {_summary(out.response)}")
        if item.get("b64_json"):
            try:
                return base64.b64decode(item["b64_json"], validate=True), "b64_json"
            except (binascii.Error, ValueError, TypeError) as exc:
                raise ProviderError("image reply b64_json is not valid base64") from exc
        if isinstance(item.get("url"), str):
            download = await self.calls.http.get_bytes(client, item["url"])
            out.attempts += download.attempts
            out.latency_ms += download.latency_ms
            return download.body, "url"
        raise ProviderError(f"image reply has neither b64_json nor url: {_summary(out.response)}")

    def _result(
        self, png: bytes, out: CallOutcome, prompt: str, width: int, height: int, facts: dict
    ) -> GeneratedImage:
        return self._generated(
            png,
            prompt,
            width,
            height,
            latency_ms=round(out.latency_ms, 3),
            cost_usd=round(out.cost_usd, 8),
            attempts=out.attempts,
            cached=out.cached,
            **facts,
        )


def _summary(response: Any) -> Any:
    """The reply without image bytes (a failed row must not carry megabytes of base64)."""
    if not isinstance(response, dict):
        return str(response)[:300]
    data = response.get("data")
    if isinstance(data, list):
        data = [
            {
                k: (f"<{len(v)} chars>" if k == "b64_json" and isinstance(v, str) else v)
                for k, v in d.items()
            }
            if isinstance(d, dict)
            else d
            for d in data
        ]
    return {**response, "data": data}
