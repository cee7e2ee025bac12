"""After a real pipeline run, audit_log holds one row per written field, tagged with the run."""

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.storage import repository as repo


def test_structured_story_run_audits_each_field_and_scene(instance, engine, resources):
    repo.register_request(
        engine,
        "ava-1",
        StoryRequest(story_id="ava-1", child_name="Ava", age=5, scene_count=3),
        by="test",
    )
    instance.add_dynamic_partitions("stories", ["ava-1"])
    runs = []
    for asset in ("structured_story", "visual_profile", "base_style"):
        result = dg.materialize(
            [story_assets],
            partition_key="ava-1",
            instance=instance,
            resources=resources,
            selection=[dg.AssetKey(asset)],
        )
        assert result.success
        runs.append(result.run_id)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select asset, field, scene_number, source, run_id from audit_log "
                "where story_id = 'ava-1' order by id"
            )
        ).all()
    got = {(r.asset, r.field, r.scene_number) for r in rows}
    assert got == {
        ("structured_story", f, None)
        for f in ("child_profile", "side_character", "story_meta", "title")
    } | {("structured_story", "text", n) for n in (1, 2, 3)} | {
        ("visual_profile", "visual_profile", None),
        ("base_style", "base_style", None),
    }
    assert len(rows) == len(got)  # exactly one row per field
    assert {r.source for r in rows} == {"ai"}
    assert {r.run_id for r in rows} == set(runs)
