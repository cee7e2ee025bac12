"""The character sheet and the locked seed against the loopback fake (issue 15): the sheet is
drawn once and sent with every scene in the field the model takes, schnell falls back to the
seed and the character card, the seed is one per story and kept by --fresh unless --new-seed,
and a re-run pays nothing."""

import base64

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.runner import FRESH_TAG, NEW_SEED_TAG
from storygen_dagster.domain.compose import SHEET_PROMPT_PREFIX
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import call_cache, sheets
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.objects import ObjectStore
from tests.fakes.helpers import image_resource, llm_resource

pytest_plugins = ["tests.fakes.fixtures"]

KONTEXT = "black-forest-labs/FLUX.1-kontext-pro"
FLUX2 = "black-forest-labs/FLUX.2-pro"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
GPT_IMAGE = "gpt-image-1"
CONSISTENT = dg.AssetCheckKey(dg.AssetKey("scene_images"), "character_consistent")


def _register(engine, ids, **fields):
    for sid in ids:
        request = StoryRequest(story_id=sid, child_name=sid.title().replace("-", " "), **fields)
        repo.register_request(engine, sid, request, by="test")


def _defs(fake, resources, model):
    images = image_resource(fake, model=model)
    return build_definitions({**resources, "llm": llm_resource(fake), "images": images})


def _drawn(fake, sid_seed=None):
    """(sheet requests, scene requests) the fake saw, in order."""
    bodies = [s.body for s in fake.seen if s.kind == "images"]
    if sid_seed is not None:
        bodies = [b for b in bodies if b["seed"] == sid_seed]
    sheet = [b for b in bodies if b["prompt"].startswith(SHEET_PROMPT_PREFIX)]
    return sheet, [b for b in bodies if not b["prompt"].startswith(SHEET_PROMPT_PREFIX)]


def _seeds(engine, sid):
    with engine.connect() as conn:
        story = conn.execute(
            sa.text("select image_seed from stories where story_id = :s"), {"s": sid}
        ).scalar_one()
        rows = conn.execute(
            sa.text("select image_seed, provenance from scenes where story_id = :s"), {"s": sid}
        ).all()
    return story, {r[0] for r in rows}, {r[1]["scene_images"]["seed"] for r in rows}


@pytest.mark.parametrize(("model", "field"), [(KONTEXT, "image_url"), (FLUX2, "reference_images")])
def test_sheet_drawn_once_and_sent_with_every_scene_in_the_models_field(
    fake, resources, provider_env, instance, engine, object_root, model, field
):
    _register(engine, ["ref-1"], scene_count=3)
    defs = _defs(fake, resources, model)
    [outcome] = materialize_stories(defs, instance, ["ref-1"])
    assert outcome.success
    sheet, scenes = _drawn(fake)
    assert len(sheet) == 1 and len(scenes) == 3
    assert "image_url" not in sheet[0] and "reference_images" not in sheet[0]
    uri = sheets.load_sheets(engine, ["ref-1"])["ref-1"]["uri"]
    stored = ObjectStore(str(object_root)).get(uri)
    other = "reference_images" if field == "image_url" else "image_url"
    for body in scenes:
        sent = body[field]
        if field == "reference_images":
            assert len(sent) == 1
            sent = sent[0]
        assert sent.startswith("data:image/png;base64,") and other not in body
        assert base64.b64decode(sent.split(",", 1)[1]) == stored
    seed, row_seeds, prov_seeds = _seeds(engine, "ref-1")
    assert {b["seed"] for b in sheet + scenes} == {seed} == row_seeds == prov_seeds
    # The ledger keys and keeps the reference by its sha256, never the base64, and prices it.
    with engine.connect() as conn:
        requests = conn.execute(
            sa.text("select request::text from provider_calls where asset = 'scene_images'")
        ).scalars()
        assert all("sha256=" in r and "base64" not in r for r in requests)
    ledger = call_cache.ledger(engine, "ref-1")
    images = ledger[ledger["endpoint"] == "images/generations"]
    assert sorted(images["asset"]) == ["character_sheet"] + ["scene_images"] * 3
    assert (images["cost_usd"].astype(float) > 0).all()
    # A real model's picture has no painter's measure: the stored review of each picture (here
    # the offline checks, STORYGEN_VISION_MODEL=offline) is what the check reports.
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([CONSISTENT])
    evaluation = check[CONSISTENT].evaluation
    assert evaluation.passed and evaluation.metadata["not_measured"].value == []
    judged = evaluation.metadata["scenes"].value
    assert set(judged) == {"1", "2", "3"}
    assert {s["measured_by"] for s in judged.values()} == {"offline/storygen-offline-reviewer-v1"}
    # A re-run pays nothing: every call, the sheet's included, comes from the cache.
    seen = fake.count()
    assert materialize_stories(defs, instance, ["ref-1"])[0].success
    assert fake.count() == seen


def test_openai_edits_take_the_sheet_as_the_input_image_of_every_scene(
    fake, resources, provider_env, instance, engine, object_root
):
    _register(engine, ["edit-1"], scene_count=3)
    images = image_resource(fake, provider="openai", model=GPT_IMAGE)  # reference: auto
    defs = build_definitions({**resources, "llm": llm_resource(fake), "images": images})
    [outcome] = materialize_stories(defs, instance, ["edit-1"])
    assert outcome.success
    generations = [s for s in fake.seen if s.path.endswith("/images/generations")]
    assert [s.body["prompt"].startswith(SHEET_PROMPT_PREFIX) for s in generations] == [True]
    edits = fake.edits()
    assert len(edits) == 3 and fake.count("images") == 4
    uri = sheets.load_sheets(engine, ["edit-1"])["edit-1"]["uri"]
    stored = ObjectStore(str(object_root)).get(uri)
    for seen in edits:
        assert seen.body["model"] == GPT_IMAGE and seen.body["image"]["bytes"] == len(stored)
        assert fake.uploads[seen.body["image"]["sha256"]] == stored
        assert not seen.body["prompt"].startswith(SHEET_PROMPT_PREFIX)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select endpoint, request::text from provider_calls where asset = 'scene_images'"
            )
        ).all()
        kept = conn.execute(
            sa.text("select provenance from scenes where story_id = 'edit-1'")
        ).scalars()
        assert {p["scene_images"]["reference"] for p in kept} == {"image_edit"}
    assert len(rows) == 3 and {e for e, _ in rows} == {"images/edits"}
    assert all(f"sha256={content_hash(stored)}" in r and "base64" not in r for _, r in rows)
    seen = fake.count()
    assert materialize_stories(defs, instance, ["edit-1"])[0].success
    assert fake.count() == seen  # a re-run pays nothing


def test_schnell_falls_back_to_the_locked_seed_and_the_character_card(
    fake, resources, provider_env, instance, engine
):
    _register(engine, ["card-1", "card-2"], scene_count=3)
    defs = _defs(fake, resources, SCHNELL)
    assert materialize_stories(defs, instance, ["card-1", "card-2"])[0].success
    for sid in ("card-1", "card-2"):
        seed, row_seeds, _ = _seeds(engine, sid)
        sheet, scenes = _drawn(fake, seed)
        assert len(sheet) == 1 and len(scenes) == 3 and row_seeds == {seed}
        name = sid.title().replace("-", " ")
        for body in scenes:
            assert "image_url" not in body and "reference_images" not in body
            # The whole card, the friend included, is in every prompt.
            assert f"{name}: a " in body["prompt"] and "Friend: a wise old" in body["prompt"]
    assert _seeds(engine, "card-1")[0] != _seeds(engine, "card-2")[0]  # a seed per story


def test_fresh_keeps_the_seed_and_new_seed_draws_another(
    fake, resources, provider_env, instance, engine
):
    _register(engine, ["seed-1"], scene_count=3)
    defs = _defs(fake, resources, KONTEXT)
    assert materialize_stories(defs, instance, ["seed-1"])[0].success
    first, _, _ = _seeds(engine, "seed-1")
    assert materialize_stories(defs, instance, ["seed-1"], tags={FRESH_TAG: "true"})[0].success
    assert fake.count("images") == 8  # paid again, with the same seed
    assert {b["seed"] for b in _drawn(fake)[1]} == {first}
    tags = {FRESH_TAG: "true", NEW_SEED_TAG: "true"}
    assert materialize_stories(defs, instance, ["seed-1"], tags=tags)[0].success
    second, row_seeds, prov_seeds = _seeds(engine, "seed-1")
    assert second != first and row_seeds == prov_seeds == {second}
    sheet, scenes = _drawn(fake, second)
    assert len(sheet) == 1 and len(scenes) == 3
    with engine.connect() as conn:
        audited = conn.execute(
            sa.text(
                "select count(*) from audit_log where field = 'image_seed' and scene_number is null"
            )
        ).scalar_one()
    assert audited == 2  # the story's first seed, then the new one


def test_a_reference_the_model_cannot_take_fails_at_start(
    fake, resources, provider_env, instance, engine
):
    from storygen_dagster.defs.story.assets import story_assets

    _register(engine, ["bad-ref-1"])
    instance.add_dynamic_partitions("stories", ["bad-ref-1"])
    images = image_resource(fake, model=SCHNELL, reference="image_url")
    with pytest.raises(dg.DagsterResourceFunctionError) as err:
        dg.materialize(
            [story_assets],
            partition_key="bad-ref-1",
            instance=instance,
            resources={**resources, "llm": llm_resource(fake), "images": images},
        )
    message = str(err.value.__cause__)
    assert "STORYGEN_IMAGE_REFERENCE=image_url" in message and SCHNELL in message
    assert fake.count() == 0
