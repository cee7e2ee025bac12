"""Staleness from input fingerprints (an edited scene is stale downstream and refreshes alone),
stories built with older prompts/models, and every asset check failing on a crafted value."""

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.defs.runner import STALE_ONLY_TAG
from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain import checks
from storygen_dagster.domain.examples import demo_requests
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.staleness import outdated_stories, stale_assets, stale_items
from tests.conftest import TEST_HEIGHT, TEST_WIDTH
from tests.fakes.provider_server import solid_png

pytest_plugins = ["tests.fakes.fixtures"]


def _scene_rows(engine, sid):
    with engine.connect() as conn:
        return {
            r.scene_number: r
            for r in conn.execute(
                sa.text(
                    "select scene_number, text, moment, image_sha256, updated_at, "
                    "input_fingerprints from scenes where story_id = :s"
                ),
                {"s": sid},
            )
        }


def _built(engine, instance, defs, sid, **fields):
    repo.register_request(engine, sid, StoryRequest(story_id=sid, **fields), by="test")
    [outcome] = materialize_stories(defs, instance, [sid])
    assert outcome.success
    return outcome


def test_fresh_story_has_nothing_stale(instance, engine, test_defs):
    _built(engine, instance, test_defs, "fresh-1", scene_count=3)
    assert stale_items(engine, "fresh-1") == []
    fingerprints = _scene_rows(engine, "fresh-1")[1].input_fingerprints
    assert set(fingerprints) == {"structured_story", "scene_moments", "scene_images"}


def test_edited_scene_is_stale_downstream_only_and_refreshes_alone(instance, engine, test_defs):
    _built(engine, instance, test_defs, "edit-1", child_name="Noor", scene_count=4)
    before = _scene_rows(engine, "edit-1")
    with engine.begin() as conn:  # the edit, as `storygen edit --scene 2 --text` stores it
        conn.execute(
            sa.text(
                "update scenes set text = 'Noor finds a glowing shell. The sea hums.', "
                "source = 'user' where story_id = 'edit-1' and scene_number = 2"
            )
        )
    items = stale_items(engine, "edit-1")
    assert {(i["asset"], i["scene_number"]) for i in items} == {
        ("scene_moments", 2),
        ("scene_images", 2),
        ("storybook", None),
        ("storybook_pdf", None),
        ("storybook_epub", None),
    }
    assert stale_assets(items) == [
        "scene_moments",
        "scene_images",
        "storybook",
        "storybook_pdf",
        "storybook_epub",
    ]

    [outcome] = materialize_stories(
        test_defs,
        instance,
        ["edit-1"],
        tags={STALE_ONLY_TAG: "true"},
        assets=stale_assets(items),
    )
    assert outcome.success
    after = _scene_rows(engine, "edit-1")
    assert stale_items(engine, "edit-1") == []
    assert after[2].moment != before[2].moment and "glowing shell" in after[2].moment
    assert after[2].image_sha256 != before[2].image_sha256
    for n in (1, 3, 4):  # untouched scenes were not rewritten
        assert after[n].updated_at == before[n].updated_at
        assert after[n].image_sha256 == before[n].image_sha256
    # The run's materializations name exactly the refreshed scene.
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("scene_moments"), asset_partitions=["edit-1"]),
        limit=1,
    ).records
    meta = records[0].asset_materialization.metadata
    assert records[0].run_id == outcome.run_id
    assert set(meta["input_fingerprints"].value) == {"2"} and meta["calls"].value == 1


def test_changed_visual_profile_makes_every_image_stale(instance, engine, test_defs):
    _built(engine, instance, test_defs, "cli-stale-1", scene_count=3)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update stories set visual_profile = jsonb_set(visual_profile, "
                "'{character_prompt}', '\"a child in a yellow raincoat\"') "
                "where story_id = 'cli-stale-1'"
            )
        )
    # The profile's own inputs did not change, but what the sheet and every image were drawn
    # from did.
    items = stale_items(engine, "cli-stale-1")
    assert {(i["asset"], i["scene_number"]) for i in items} == {
        ("character_sheet", None),
        ("scene_images", 1),
        ("scene_images", 2),
        ("scene_images", 3),
        ("storybook", None),
        ("storybook_pdf", None),
        ("storybook_epub", None),
    }


def test_outdated_lists_older_prompt_versions_and_models(instance, engine, test_defs):
    _built(engine, instance, test_defs, "old-1", scene_count=3)
    _built(engine, instance, test_defs, "new-1", scene_count=3)
    models = {
        a: "storygen-offline-v1"
        for a in ("structured_story", "visual_profile", "base_style", "scene_moments")
    }
    models["scene_images"] = models["character_sheet"] = "storygen-offline-painter-v2"
    assert outdated_stories(engine, models) == []
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update stories set provenance = jsonb_set(provenance, "
                "'{base_style,prompt_version}', '\"v0\"') where story_id = 'old-1'"
            )
        )
    rows = outdated_stories(engine, models)
    assert rows == [
        {"story_id": "old-1", "reasons": ["base_style: prompt base_style v0 (current v1)"]}
    ]
    other = outdated_stories(engine, {**models, "scene_images": "flux-pro"})
    assert [r["story_id"] for r in other] == ["new-1", "old-1"]
    assert any(
        "scene_images scene 1: model storygen-offline-painter-v2" in r for r in other[0]["reasons"]
    )


# -- checks on crafted bad values ---------------------------------------------------------------
def _story():
    from storygen_dagster.providers.offline import story_for as offline_story

    return offline_story(StoryRequest(child_name="Ada", scene_count=3))


def test_scene_count_check():
    assert checks.scene_count_problems(3, [1, 2, 3]) == []
    assert checks.scene_count_problems(3, [1, 2]) == [
        "scenes stored [1, 2] but story_meta.scene_count is 3"
    ]
    assert checks.scene_count_problems(3, [1, 2, 3, 4])
    assert checks.scene_count_problems(6, [1, 2, 3, 4, 5, 6])[0] == (
        "story_meta.scene_count is 6, outside 3-5"
    )


def test_required_fields_check():
    story = _story()
    assert checks.required_field_problems(story) == []
    assert story.side_character.exists
    assert checks.required_field_problems(story, visual_profile={"character_prompt": ""}) == [
        "visual_profile.character_prompt is empty",
        "visual_profile.side_character_prompt is empty",
    ]
    style = {"art_style": "watercolor", "lighting": "", "atmosphere": "calm"}
    assert checks.required_field_problems(story, base_style=style) == [
        "base_style.lighting is empty",
        "base_style.color_scheme is empty",
        "base_style.composition_rules is empty",
    ]


def test_prompt_budget_check():
    assert checks.prompt_budget_problems({1: "x" * 80, 2: "y" * 81}, 80) == [
        "scene 2: image prompt is 81 characters, budget 80"
    ]


def test_content_safety_check_matches_whole_words_only():
    texts = {"scene 1 text": "Mia hugs the skill-ful knight.", "title": "A GUN in the attic"}
    assert checks.unsafe_terms(texts) == ["title: gun"]
    assert checks.unsafe_terms({"t": "a lovely day"}, ["lovely"]) == ["t: lovely"]


def test_blank_image_fails_images_valid_and_the_story_only(
    fake, real_resources, instance, engine, provider_env
):
    from storygen_dagster.definitions import build_definitions

    ids = ["blank-1"]
    repo.register_request(
        engine, "blank-1", StoryRequest(story_id="blank-1", scene_count=3), by="t"
    )
    # One scene's image comes back a single colour (what a filtered image looks like); the
    # first image request is the character sheet, answered as usual.
    fake.queue("images", {}, {"png": solid_png(TEST_WIDTH, TEST_HEIGHT)})
    defs = build_definitions(real_resources)
    [outcome] = materialize_stories(defs, instance, ids)
    assert not outcome.success
    row = reads.story_overview(engine, "blank-1").iloc[0]
    assert row["status"] == "failed" and "images_valid" in row["error"] and "blank" in row["error"]
    key = dg.AssetCheckKey(dg.AssetKey("scene_images"), "images_valid")
    execution = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert execution.status.value == "FAILED"
    evaluation = execution.event.dagster_event.event_specific_data
    assert evaluation.partition == "blank-1"
    assert "blank" in evaluation.metadata["problems"].value[0]
    # The two good images are stored; the book is not built.
    frame = reads.load_scenes(engine, ids)
    assert frame["image_uri"].notna().sum() == 2 and row["book"] is None


def test_demo_batch_checks_all_pass(instance, engine, test_defs):
    count = 2
    requests = demo_requests(count)
    for r in requests:
        repo.register_request(engine, r.story_id, r, by="test")
    [outcome] = materialize_stories(test_defs, instance, [r.story_id for r in requests])
    assert outcome.success
    for spec in story_assets.check_specs:
        infos = instance.event_log_storage.get_asset_check_partition_info([spec.key])
        by_story = {i.partition_key: i.latest_execution_status.value for i in infos}
        assert by_story == {r.story_id: "SUCCEEDED" for r in requests}, spec.key


def test_user_edited_moment_is_kept_never_stale_and_costs_no_call(instance, engine, test_defs):
    from storygen_dagster.storage.edits import edit_story

    _built(engine, instance, test_defs, "own-1", child_name="Ivo", scene_count=3)
    edit_story(engine, "own-1", by="ana", scene_number=3, moment="Ivo waves from a red kite")
    edit_story(engine, "own-1", by="ana", scene_number=3, text="Ivo flies a kite at dusk.")
    items = stale_items(engine, "own-1")
    # The moment is the user's (not stale even though its scene's text changed); the image
    # drawn from the old moment is.
    assert {(i["asset"], i["scene_number"]) for i in items} == {
        ("scene_images", 3),
        ("storybook", None),
        ("storybook_pdf", None),
        ("storybook_epub", None),
    }
    # A full AI re-run keeps the moment and makes no call for it.
    [outcome] = materialize_stories(test_defs, instance, ["own-1"])
    assert outcome.success
    assert _scene_rows(engine, "own-1")[3].moment == "Ivo waves from a red kite"
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("scene_moments"), asset_partitions=["own-1"]),
        limit=1,
    ).records
    assert records[0].run_id == outcome.run_id
    assert set(records[0].asset_materialization.metadata["input_fingerprints"].value) == {"1", "2"}
    assert stale_items(engine, "own-1") == []


def _run_checks(instance, defs, sid):
    """Execute every check alone (the UI's 'Execute checks'), on the stored values."""
    job = defs.resolve_job_def("storybook_job").get_subset(
        asset_check_selection={s.key for s in story_assets.check_specs}
    )
    result = job.execute_in_process(instance=instance, partition_key=sid, raise_on_error=False)
    assert not result.get_asset_materialization_events()  # nothing regenerated
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_checks_alone_pass_on_a_good_story_and_each_fails_on_a_crafted_value(
    instance, engine, test_defs, object_root
):
    _built(engine, instance, test_defs, "crafted-1", child_name="Lu", scene_count=4)
    good = _run_checks(instance, test_defs, "crafted-1")
    assert len(good) == len(story_assets.check_specs) and all(e.passed for e in good.values())
    crafted = [
        # (SQL that breaks one value, the check that must fail)
        (
            "delete from scenes where story_id = 'crafted-1' and scene_number = 4",
            ("structured_story", "scene_count"),
        ),
        (
            "update stories set visual_profile = jsonb_set(visual_profile, '{character_prompt}', "
            "'\"\"') where story_id = 'crafted-1'",
            ("visual_profile", "required_fields"),
        ),
        (
            "update stories set base_style = base_style - 'lighting' where story_id = 'crafted-1'",
            ("base_style", "required_fields"),
        ),
        (
            "update scenes set image_prompt = repeat('x', 5000) where story_id = 'crafted-1' "
            "and scene_number = 1",
            ("scene_images", "prompt_budget"),
        ),
        (
            "update scenes set moment = 'Lu finds a gun' where story_id = 'crafted-1' "
            "and scene_number = 2",
            ("storybook", "content_safety"),
        ),
    ]
    for sql, check in crafted:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        evaluations = _run_checks(instance, test_defs, "crafted-1")
        failed = {k for k, e in evaluations.items() if not e.passed}
        assert check in failed, (sql, failed)
        assert evaluations[check].partition == "crafted-1"
        assert evaluations[check].metadata["problems"].value
        _built(engine, instance, test_defs, "crafted-1", child_name="Lu", scene_count=4)
    # A stored image that no longer decodes fails images_valid.
    from storygen_dagster.storage.objects import ObjectStore

    uri = reads.load_scenes(engine, ["crafted-1"])["image_uri"].iloc[0]
    ObjectStore(str(object_root)).path(uri).write_bytes(b"not a png")
    evaluations = _run_checks(instance, test_defs, "crafted-1")
    assert not evaluations[("scene_images", "images_valid")].passed
    row = reads.story_overview(engine, "crafted-1").iloc[0]
    assert row["status"] == "failed" and "images_valid" in row["error"]


def test_moderation_endpoint_holds_a_flagged_story(
    fake, real_resources, instance, engine, provider_env
):
    """With STORYGEN_MODERATION_URL set, content_safety also asks the endpoint (here the
    loopback fake, which flags one word): the flagged story is held, the other is built."""
    from storygen_dagster.definitions import build_definitions
    from storygen_dagster.defs.providers import ModerationEndpointResource, provider_resources
    from storygen_dagster.settings import get_settings
    from tests.fakes.helpers import KEY

    provider_env.setenv("STORYGEN_MODERATION_URL", fake.url)
    provider_env.setenv("STORYGEN_MODERATION_API_KEY", KEY)
    # The settings pick the endpoint resource; its fields fall back to the same settings.
    moderation = provider_resources(get_settings())["moderation"]
    assert isinstance(moderation, ModerationEndpointResource)
    real_resources = {**real_resources, "moderation": moderation}
    fake.flag_words = {"Vexmoor"}
    for sid, name in (("mod-1", "Vexmoor"), ("mod-2", "Pim")):
        request = StoryRequest(story_id=sid, child_name=name, scene_count=3)
        repo.register_request(engine, sid, request, by="t")
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ["mod-1", "mod-2"])
    assert not outcome.success
    rows = reads.story_overview(engine).set_index("story_id")
    assert rows.at["mod-2", "status"] == "succeeded"
    assert rows.at["mod-1", "status"] == "held"
    assert "flagged (violence)" in rows.at["mod-1", "error"]
    calls = [s for s in fake.seen if s.kind == "moderations"]
    assert len(calls) == 2 and all(s.auth == f"Bearer {KEY}" for s in calls)
    assert calls[0].body["model"] == "omni-moderation-latest"


def test_checks_alone_on_a_story_never_built_check_nothing_and_change_nothing(
    instance, engine, test_defs
):
    repo.register_request(engine, "empty-1", StoryRequest(story_id="empty-1"), by="t")
    instance.add_dynamic_partitions("stories", ["empty-1"])
    evaluations = _run_checks(instance, test_defs, "empty-1")
    assert evaluations == {}  # nothing stored, nothing evaluated
    assert reads.story_overview(engine, "empty-1").iloc[0]["status"] == "pending"
