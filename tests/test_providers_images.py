"""The image clients against the loopback fake: b64 and url results, PNG checks, the ledger,
the cache through the object store, and the shared rate and concurrency limits."""

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.images import inspect_png
from storygen_dagster.providers.base import CallContext, ProviderError
from storygen_dagster.providers.offline_figures import paint_sheet
from storygen_dagster.storage import call_cache
from storygen_dagster.storage.objects import ObjectStore
from storygen_dagster.storage.tables import budget_holds
from tests.conftest import TEST_HEIGHT, TEST_WIDTH
from tests.fakes.helpers import KEY, image_resource
from tests.fakes.provider_server import solid_png

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture()
def store(object_root) -> ObjectStore:
    return ObjectStore(str(object_root))


def draw(client, scene=1, story_id="s-1", fresh=False, prompt="a fox in a forest"):
    ctx = CallContext(story_id, "scene_images", scene, fresh=fresh)
    return client.generate_image(prompt, ctx, width=TEST_WIDTH, height=TEST_HEIGHT, seed=42)


def run(coro):
    return asyncio.run(coro)


def test_b64_image_is_a_valid_png_and_ledgered(fake, provider_env, engine, store):
    client = image_resource(fake).client(engine, store)
    image = run(draw(client))
    assert inspect_png(image.png, width=TEST_WIDTH, height=TEST_HEIGHT).stddev > 4
    body = fake.seen[0].body
    assert body["steps"] == 4 and body["seed"] == 42 and body["n"] == 1
    assert (body["width"], body["height"], body["response_format"]) == (320, 240, "b64_json")
    row = call_cache.ledger(engine).iloc[0]
    assert row["status"] == "succeeded" and float(row["cost_usd"]) == pytest.approx(0.000768)
    assert image.provenance.cost_usd == pytest.approx(0.000768)
    # The ledger keeps the object key, not megabytes of base64.
    with engine.connect() as conn:
        response = conn.exec_driver_sql("select response from provider_calls").scalar_one()
    assert "data" not in response and len(str(response)) < 400
    assert response["source"] == "b64_json" and store.exists(response["object_key"])


def test_cached_image_comes_from_the_object_store(fake, provider_env, engine, store):
    client = image_resource(fake).client(engine, store)
    first = run(draw(client))
    again = run(draw(client))
    assert fake.count("images") == 1 and again.provenance.cached and again.png == first.png
    run(draw(client, fresh=True))
    assert fake.count("images") == 2


def test_url_image_is_downloaded_without_the_key(fake, provider_env, engine, store):
    provider_env.setenv("STORYGEN_IMAGE_RESPONSE_FORMAT", "url")
    client = image_resource(fake).client(engine, store)
    image = run(draw(client))
    inspect_png(image.png, width=TEST_WIDTH, height=TEST_HEIGHT)
    assert fake.count("images") == 1 and fake.count("files") == 1
    assert fake.seen[1].auth is None  # the CDN never sees the API key
    assert image.provenance.attempts == 2  # the generation plus the download


def test_url_download_retries_a_503(fake, provider_env, engine, store):
    provider_env.setenv("STORYGEN_IMAGE_RESPONSE_FORMAT", "url")
    fake.queue("files", {"status": 503})
    client = image_resource(fake).client(engine, store)
    run(draw(client))
    assert fake.count("files") == 2 and fake.count("images") == 1


def test_black_image_is_rejected(fake, provider_env, engine, store):
    fake.queue("images", {"png": solid_png(TEST_WIDTH, TEST_HEIGHT)})
    client = image_resource(fake).client(engine, store)
    with pytest.raises(ProviderError, match="blank"):
        run(draw(client))
    assert fake.count("images") == 1
    row = call_cache.ledger(engine).iloc[0]
    assert row["status"] == "failed" and "blank" in row["error"]
    # Not reused: a re-run asks again.
    run(draw(client))
    assert fake.count("images") == 2


def test_jpeg_reply_is_converted_to_png(fake, provider_env, engine, store):
    import io

    from PIL import Image

    from storygen_dagster.providers.offline_painter import paint_scene

    png = paint_scene("x", TEST_WIDTH, TEST_HEIGHT, 1)
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png)).save(jpeg, format="JPEG")
    fake.queue("images", {"png": jpeg.getvalue()})
    client = image_resource(fake).client(engine, store)
    image = run(draw(client))
    assert image.png.startswith(b"\x89PNG")


def test_openai_images_variant(fake, provider_env, engine, store):
    client = image_resource(fake, provider="openai").client(engine, store)
    image = run(draw(client))
    body = fake.seen[0].body
    assert body["size"] == "1792x1024" and "steps" not in body and "seed" not in body
    # The 1792x1024 reply is cropped to the book's size, not stretched.
    inspect_png(image.png, width=TEST_WIDTH, height=TEST_HEIGHT)
    assert image.provenance.provider == "openai"
    assert fake.seen[0].path == "/v1/images/generations"


def test_rate_limit_spaces_requests(fake, provider_env, engine, store):
    # 120 RPM = bursts of 2 per second: 6 calls take at least ~2 s.
    client = image_resource(fake, rpm=120).client(engine, store)

    async def many():
        await asyncio.gather(*(draw(client, scene=i, prompt=f"scene {i}") for i in range(6)))

    started = time.monotonic()
    run(many())
    times = fake.times("images")
    assert len(times) == 6
    assert max(times) - min(times) >= 1.8
    assert time.monotonic() - started < 10


def test_global_concurrency_limit_is_shared(fake, provider_env, engine, store):
    provider_env.setenv("STORYGEN_MAX_CONCURRENCY", "2")
    fake.delay_s = 0.2
    images = image_resource(fake).client(engine, store)
    from tests.fakes.helpers import llm_resource

    llm = llm_resource(fake).client(engine)
    from storygen_dagster.domain.models import StoryRequest
    from storygen_dagster.providers import offline

    story = offline.story_for(StoryRequest(scene_count=3))

    async def mixed():
        calls = [draw(images, scene=i, prompt=f"p{i}") for i in range(3)]
        calls += [
            llm.generate_scene_moment(story, n, CallContext("s-2", "scene_moments", n))
            for n in (1, 2, 3)
        ]
        await asyncio.gather(*calls)

    run(mixed())
    assert fake.count() == 6 and fake.max_in_flight == 2


def test_image_402_trips_the_breaker(fake, provider_env, engine, store):
    fake.queue("images", {"status": 402, "body": {"error": "insufficient credits"}})
    client = image_resource(fake).client(engine, store)
    with pytest.raises(ProviderError) as err:
        run(draw(client))
    assert err.value.fatal and err.value.status_code == 402
    with pytest.raises(ProviderError, match="402"):
        run(draw(client, scene=2))
    assert fake.count("images") == 1  # the second call never left the process


def test_b64_payload_is_validated(fake, provider_env, engine, store):
    fake.queue("images", {"png": b"not an image"})
    client = image_resource(fake).client(engine, store)
    with pytest.raises(ProviderError, match="does not decode"):
        run(draw(client))


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        ({"data": "queued"}, "image reply has no data"),
        ({"data": ["queued"]}, "image reply has no data"),
        ({"data": [{"b64_json": 5}]}, "not valid base64"),
    ],
)
def test_an_image_reply_of_another_shape_fails_clearly_and_is_ledgered(
    fake, provider_env, engine, store, reply, needle
):
    """Were AttributeError / TypeError: a story failed with "'str' object has no attribute
    'get'" and the paid call was never ledgered."""
    fake.queue("images", {"status": 200, "body": reply})
    client = image_resource(fake).client(engine, store)
    with pytest.raises(ProviderError, match=needle):
        run(draw(client))
    assert list(call_cache.ledger(engine)["status"]) == ["failed"]


def test_openai_image_edit_uploads_the_sheet_as_multipart_and_keys_it_by_sha256(
    fake, provider_env, engine, store
):
    sheet = paint_sheet("a child in a teal top", TEST_WIDTH, TEST_HEIGHT)
    resource = image_resource(fake, provider="openai", model="gpt-image-1", reference="image_edit")
    client = resource.client(engine, store)
    # The edits endpoint misbehaves as the others can: a 429 with Retry-After is waited out.
    fake.queue("images", {"status": 429, "headers": {"Retry-After": "0.2"}})
    ctx = CallContext("s-1", "scene_images", 1)
    image = run(
        client.generate_image(
            "a fox", ctx, width=TEST_WIDTH, height=TEST_HEIGHT, seed=42, reference=sheet
        )
    )
    inspect_png(image.png, width=TEST_WIDTH, height=TEST_HEIGHT)
    assert image.provenance.reference == "image_edit" and client.calls.http.waits == [0.2]
    retried, sent = fake.edits()
    assert retried.body == sent.body and sent.auth == f"Bearer {KEY}"
    assert sent.body["image"] == {
        "filename": "character-sheet.png",
        "content_type": "image/png",
        "bytes": len(sheet),
        "sha256": content_hash(sheet),
    }
    assert fake.uploads[content_hash(sheet)] == sheet
    assert {k: v for k, v in sent.body.items() if k != "image"} == {
        "model": "gpt-image-1",
        "prompt": "a fox",
        "n": "1",
        "size": "1536x1024",  # gpt-image's landscape preset; no response_format, no seed
    }
    # The ledger prices the edit and keys the sheet by its sha256, never its bytes.
    [row] = call_cache.ledger(engine).itertuples()
    assert row.endpoint == "images/edits" and float(row.cost_usd) == pytest.approx(0.073)
    with engine.connect() as conn:
        request = conn.exec_driver_sql("select request::text from provider_calls").scalar_one()
    assert f"sha256={content_hash(sheet)}" in request and "base64" not in request
    # Another sheet is another request; the same one comes from the cache.
    again = run(
        client.generate_image(
            "a fox", ctx, width=TEST_WIDTH, height=TEST_HEIGHT, seed=42, reference=sheet
        )
    )
    assert again.provenance.cached and fake.count("images") == 2


def test_an_edit_without_its_image_is_refused_by_the_fake(fake, provider_env):
    reply = httpx.post(
        f"{fake.url}/images/edits",
        data={"model": "gpt-image-1", "prompt": "a fox"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert reply.status_code == 400 and "image is required" in reply.text


def test_a_paid_picture_the_store_refuses_is_ledgered_and_its_hold_released(
    fake, provider_env, engine, store, monkeypatch
):
    """The object store fails after the provider was paid: the call is recorded as failed
    with its cost (the story's and the day's budget count it) and the day's hold is released."""
    monkeypatch.setenv("STORYGEN_MAX_COST_PER_DAY_USD", "10")
    client = image_resource(fake).client(engine, store)

    def refuse(key, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "put", refuse)
    with pytest.raises(OSError, match="No space left"):
        run(draw(client))
    ledger = call_cache.ledger(engine)
    assert list(ledger["status"]) == ["failed"] and ledger.iloc[0]["cost_usd"] > 0
    assert "No space left on device" in ledger.iloc[0]["error"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(budget_holds)).scalar() == 0
