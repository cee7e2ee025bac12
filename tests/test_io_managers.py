"""The IO managers: every story asset loads through them after a real run, values written
through them load back the same (local folder and moto's S3 server), a downstream asset gets a
range as {story_id: value}."""

import uuid

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.catalog import story_catalog
from storygen_dagster.defs.io_managers import OBJECTS_IO, POSTGRES_IO, io_managers
from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.defs.resources import ObjectStoreResource
from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.images import inspect_png
from storygen_dagster.domain.models import BaseStyle, StoryRequest, StructuredStory, VisualProfile
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.values import IMAGE_COLUMNS, MOMENT_COLUMNS, MissingValue
from tests.conftest import TEST_HEIGHT, TEST_WIDTH

ORDER = [
    "structured_story",
    "visual_profile",
    "base_style",
    "scene_moments",
    "character_sheet",
    "scene_images",
    "storybook",
    "storybook_pdf",
    "storybook_epub",
]
OBJECT_KEYS = (
    "character_sheet",
    "scene_images",
    "storybook",
    "storybook_pdf",
    "storybook_epub",
)
BOOK_KEYS = OBJECT_KEYS[2:]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _register(engine, *ids: str, **fields) -> None:
    for sid in ids:
        repo.register_request(engine, sid, StoryRequest(story_id=sid, **fields), by="test")


def _generate(defs, instance, engine, *ids: str, **fields) -> None:
    _register(engine, *ids, **fields)
    assert all(o.success for o in materialize_stories(defs, instance, list(ids)))


def test_every_story_asset_loads_its_stored_value(instance, engine, test_defs):
    _generate(test_defs, instance, engine, "io-1", child_name="Noa", age=4, scene_count=4)

    def load(key: str, **metadata):
        return test_defs.load_asset_value(
            key, partition_key="io-1", instance=instance, metadata=metadata or None
        )

    story = load("structured_story")
    assert isinstance(story, StructuredStory) and story.child_profile.name == "Noa"
    assert isinstance(load("visual_profile"), VisualProfile)
    assert isinstance(load("base_style"), BaseStyle)
    moments = load("scene_moments")
    assert list(moments.columns) == MOMENT_COLUMNS
    assert moments.scene_number.tolist() == [1, 2, 3, 4] and moments.moment.notna().all()
    assert moments.text.tolist() == [s.text for s in story.scenes]
    images = load("scene_images", with_bytes=True)
    assert list(images.columns) == [*IMAGE_COLUMNS, "image_png"]
    for png in images.image_png:
        assert inspect_png(png, width=TEST_WIDTH, height=TEST_HEIGHT).stddev > 10
    assert "image_png" not in load("scene_images").columns
    html = load("storybook")
    assert story.story_meta.story_title.replace("'", "&#39;") in html
    assert all(f"images/io-1/{sha}.png" in html for sha in images.image_sha256)
    with engine.connect() as conn:
        uri = conn.execute(sa.text("select book_uri from stories where story_id='io-1'")).scalar()
    assert load("storybook", as_uri=True) == uri
    pdf, epub = load("storybook_pdf"), load("storybook_epub")
    assert pdf.startswith(b"%PDF") and epub.startswith(b"PK")
    assert load("storybook_pdf", as_uri=True).endswith(".pdf")


def test_story_step_sets_up_io_managers_but_never_calls_handle_output(instance, engine, resources):
    calls = []

    def recording(cls):
        class Recording(cls):
            def handle_output(self, context, obj):
                calls.append(("handle_output", context.asset_key.to_user_string()))
                super().handle_output(context, obj)

        return Recording

    db, objects = resources["db"], resources["objects"]
    recorded = {
        POSTGRES_IO: recording(type(resources[POSTGRES_IO]))(db=db),
        OBJECTS_IO: recording(type(resources[OBJECTS_IO]))(db=db, objects=objects),
    }
    _register(engine, "quiet-1", scene_count=3)
    instance.add_dynamic_partitions("stories", ["quiet-1"])
    result = dg.materialize(
        [story_assets],
        partition_key="quiet-1",
        instance=instance,
        resources={**resources, **recorded},
    )
    assert result.success and len(result.get_asset_materialization_events()) == 9
    assert calls == []
    # ... although Dagster sets both IO managers up for the step.
    inits = [e.message for e in result.all_events if e.event_type_value == "RESOURCE_INIT_SUCCESS"]
    assert any(POSTGRES_IO in m and OBJECTS_IO in m for m in inits)


def test_missing_value_names_the_story_and_the_asset(instance, engine, test_defs):
    _register(engine, "later-1", scene_count=3)
    instance.add_dynamic_partitions("stories", ["later-1"])
    with pytest.raises(MissingValue, match=r"structured_story of story 'later-1'"):
        test_defs.load_asset_value("structured_story", partition_key="later-1", instance=instance)
    result = dg.materialize(
        [story_assets],
        partition_key="later-1",
        instance=instance,
        resources=test_defs.resources,
        selection=[dg.AssetKey("structured_story")],
    )
    assert result.success
    with pytest.raises(MissingValue, match=r"scene_moments of story 'later-1': scenes 1, 2, 3"):
        test_defs.load_asset_value("scene_moments", partition_key="later-1", instance=instance)
    with pytest.raises(MissingValue, match=r"storybook of story 'later-1'"):
        test_defs.load_asset_value("storybook", partition_key="later-1", instance=instance)


def test_catalog_over_a_three_story_range_gets_dicts_keyed_by_story(instance, engine, test_defs):
    ids = ["cat-1", "cat-2", "cat-3"]
    _generate(test_defs, instance, engine, *ids, scene_count=3)
    seen = {}

    @dg.asset(
        partitions_def=story_partitions,
        backfill_policy=story_catalog.backfill_policy,
        ins={"storybook": dg.AssetIn(metadata={"as_uri": True})},
    )
    def probe(structured_story, storybook) -> None:
        seen.update(stories=structured_story, books=storybook)

    result = dg.materialize(
        [story_assets, story_catalog, probe],
        selection=[story_catalog.key, probe.key],
        instance=instance,
        resources=test_defs.resources,
        tags=dict(zip(RANGE, (ids[0], ids[-1]), strict=True)),
    )
    assert result.success
    assert len({e.step_key for e in result.all_events if e.step_key}) == 2  # one step each
    assert sorted(seen["stories"]) == ids and sorted(seen["books"]) == ids
    assert all(isinstance(s, StructuredStory) for s in seen["stories"].values())
    mats = result.asset_materializations_for_node("story_catalog")
    assert sorted(m.partition for m in mats) == ids
    with engine.connect() as conn:
        rows = pd.read_sql(sa.text("select * from story_catalog order by story_id"), conn)
    assert rows.story_id.tolist() == ids
    for row in rows.itertuples():
        story = seen["stories"][row.story_id]
        assert row.title == story.story_meta.story_title and row.scene_count == 3
        assert row.child_name == story.child_profile.name and row.age == story.child_profile.age
        assert row.book_uri == seen["books"][row.story_id]
        assert row.updated_by == f"run:{result.run_id}"
    one = test_defs.load_asset_value("story_catalog", partition_key="cat-2", instance=instance)
    assert one.story_id.tolist() == ["cat-2"]
    with test_defs.get_asset_value_loader(instance) as loader:
        many = loader.load_asset_value(
            "story_catalog", partition_key_range=dg.PartitionKeyRange(ids[0], ids[-1])
        )
    assert sorted(many) == ids
    storybook_job = test_defs.resolve_job_def("storybook_job")
    assert dg.AssetKey("story_catalog") not in storybook_job.asset_layer.executable_asset_keys


def test_catalog_in_the_same_run_as_its_stories_is_skipped(instance, engine, test_defs):
    _register(engine, "same-1", scene_count=3)
    instance.add_dynamic_partitions("stories", ["same-1"])
    result = dg.materialize(
        [story_assets, story_catalog],
        partition_key="same-1",
        instance=instance,
        resources=test_defs.resources,
    )
    assert result.success
    skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    assert skipped == ["story_catalog"]
    materialized = instance.get_materialized_partitions(dg.AssetKey("story_catalog"))
    assert materialized == set()


@pytest.fixture(params=["local", "s3"])
def stores(request, resources, monkeypatch):
    """The test resources with the object store (and both IO managers on it) in a local folder
    or in a bucket on moto's S3 server."""
    if request.param == "local":
        return resources
    import boto3

    endpoint = request.getfixturevalue("s3_endpoint")
    for name, value in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]:
        monkeypatch.setenv(name, value)
    bucket = f"io-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    objects = ObjectStoreResource(url=f"s3://{bucket}/lib", endpoint_url=endpoint)
    return {**resources, "objects": objects, **io_managers(resources["db"], objects)}


def test_values_written_through_the_io_managers_load_back_the_same(instance, engine, stores):
    defs = build_definitions(stores)
    _generate(defs, instance, engine, "src-1", scene_count=3)
    _register(engine, "copy-1", "copy-2", scene_count=3)
    instance.add_dynamic_partitions("stories", ["copy-1", "copy-2"])
    managers = {POSTGRES_IO: stores[POSTGRES_IO], OBJECTS_IO: stores[OBJECTS_IO]}
    store = stores["objects"].store()

    def context(kind, key: str, sids: list[str], **metadata):
        build = dg.build_input_context if kind == "in" else dg.build_output_context
        extra = {"run_id": "copy-run"} if kind == "out" else {"definition_metadata": metadata}
        return build(
            asset_key=key,
            asset_partitions_def=story_partitions,
            asset_partition_key_range=dg.PartitionKeyRange(sids[0], sids[-1]),
            instance=instance,
            **extra,
        )

    for key in ORDER:
        manager = managers[OBJECTS_IO if key in OBJECT_KEYS else POSTGRES_IO]
        opts = {"with_bytes": True} if key == "scene_images" else {}
        value = manager.load_input(context("in", key, ["src-1"], **opts))
        out = context("out", key, ["copy-1", "copy-2"])
        with pytest.raises(TypeError, match=r"must be a \{story_id: value\} dict"):
            manager.handle_output(out, value)
        manager.handle_output(out, {"copy-1": value, "copy-2": value})
        copies = manager.load_input(context("in", key, ["copy-1", "copy-2"], **opts))
        assert sorted(copies) == ["copy-1", "copy-2"]
        for sid, copy in copies.items():
            if key == "scene_images":
                assert copy.image_png.tolist() == value.image_png.tolist()
                assert copy.image_sha256.tolist() == value.image_sha256.tolist()
                assert all(u.startswith(store.uri(f"images/{sid}") + "/") for u in copy.image_uri)
            elif isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(copy, value)
            else:
                assert copy == value
        if key in BOOK_KEYS:
            uris = manager.load_input(context("in", key, ["copy-1"], as_uri=True))
            assert uris.startswith(store.uri("books/copy-1") + "/")
    # None is "the asset stored its value itself": nothing is written.
    managers[POSTGRES_IO].handle_output(context("out", "base_style", ["copy-1"]), None)


def test_the_catalog_follows_its_stories_by_declarative_automation(instance, engine, test_defs):
    """eager() asks for a story's catalog row once its book is built, not again until the
    story changes, and never for a story whose book is missing."""
    from storygen_dagster.defs.catalog import catalog_automation

    assert catalog_automation.default_status == dg.DefaultSensorStatus.RUNNING
    key = dg.AssetKey("story_catalog")
    # The sensor's first tick sees nothing new: conditions compare with the previous tick.
    start = dg.evaluate_automation_conditions(test_defs, instance)
    assert start.total_requested == 0
    _generate(test_defs, instance, engine, "auto-1", "auto-2", scene_count=3)
    _register(engine, "auto-3", scene_count=3)
    instance.add_dynamic_partitions("stories", ["auto-3"])  # registered, never built
    first = dg.evaluate_automation_conditions(test_defs, instance, cursor=start.cursor)
    assert first.get_requested_partitions(key) == {"auto-1", "auto-2"}
    again = dg.evaluate_automation_conditions(test_defs, instance, cursor=first.cursor)
    assert again.total_requested == 0  # handled: nothing new upstream
    _generate(test_defs, instance, engine, "auto-2", scene_count=3)
    after = dg.evaluate_automation_conditions(test_defs, instance, cursor=again.cursor)
    assert after.get_requested_partitions(key) == {"auto-2"}
