"""User edits survive AI re-runs, are validated, and show in the audit log and the Dagster
lineage (issue 6). Real Postgres; the pipeline runs offline."""

import json
import logging

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from storygen_dagster.cli import main
from storygen_dagster.domain.models import Provenance, StoryRequest
from storygen_dagster.logs import detach_handlers
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.providers.offline import story_for
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.edits import EditError, edit_story

PROV = Provenance(provider="offline", model="m1", prompt_version="v1", input_fingerprint="fp-1")


def _rows(engine, sql, **params):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def _audit(engine, sid):
    return _rows(engine, "select * from audit_log where story_id = :sid order by id", sid=sid)


def _generate_by_hand(engine, sid="mia-1", by="run:r1", prov=PROV, **overrides):
    """What the AI steps write, called the way the assets call the repository."""
    request = StoryRequest(story_id=sid, child_name="Mia", age=5, scene_count=3)
    repo.register_request(engine, sid, request, by="test")
    story = story_for(request)
    if overrides:
        meta = story.story_meta.model_copy(update=overrides)
        scenes = [s.model_copy(update={"text": f"{s.text} (v2)"}) for s in story.scenes]
        story = story.model_copy(update={"story_meta": meta, "scenes": scenes})
    repo.save_structured_story(engine, sid, story, prov, by)
    style = dict.fromkeys(["art_style", "atmosphere", "color_scheme", "composition_rules"], "ink")
    style["lighting"] = f"soft {by}"
    repo.save_story_field(engine, sid, "base_style", style, prov, by)
    frame = pd.DataFrame(
        [
            {
                "story_id": sid,
                "scene_number": s.scene_number,
                "text": s.text,
                "moment": f"moment {s.scene_number} {by}",
                "provenance": prov.model_dump(),
            }
            for s in story.scenes
        ]
    )
    repo.upsert_scene_columns(engine, frame, ["moment"], "scene_moments", by)
    return story


def _user_edit(engine, sid="mia-1"):
    edit_story(engine, sid, by="alice", scene_number=2, text="Mia hums to the moon.")
    edit_story(engine, sid, by="alice", scene_number=1, moment="Mia waves at a fox")
    edit_story(engine, sid, by="alice", title="Mia and the Moon")
    edit_story(engine, sid, by="alice", fields={"story_meta.tone": "calm"})


def test_ai_writes_record_field_sources_and_input_fingerprints(engine):
    _generate_by_hand(engine)
    repo.set_book(engine, "mia-1", "file:///book.html", "run:r1", input_fingerprint="fp-book")
    story = _rows(engine, "select field_sources, input_fingerprints from stories")[0]
    assert story["field_sources"] == dict.fromkeys(
        ["child_profile", "side_character", "story_meta", "title", "base_style", "book_uri"], "ai"
    )
    assert story["input_fingerprints"] == {
        "structured_story": "fp-1",
        "base_style": "fp-1",
        "storybook": "fp-book",
    }
    scenes = _rows(engine, "select field_sources, input_fingerprints from scenes")
    assert {json.dumps(s, sort_keys=True) for s in scenes} == {
        json.dumps(
            {
                "field_sources": {"text": "ai", "moment": "ai"},
                "input_fingerprints": {"structured_story": "fp-1", "scene_moments": "fp-1"},
            },
            sort_keys=True,
        )
    }


def test_rerun_keeps_user_edit_and_overwrite_replaces_it(engine, caplog):
    _generate_by_hand(engine)
    _user_edit(engine)
    edit_story(engine, "mia-1", by="alice", fields={"base_style.lighting": "candle light"})
    with caplog.at_level(logging.INFO, logger="storygen.lineage"):
        _generate_by_hand(engine, by="run:r2", tone="bold", story_title="AI Title")
    story = reads.load_stories(engine, ["mia-1"])["mia-1"]
    assert story.scenes[1].text == "Mia hums to the moon."
    assert story.scenes[0].text.endswith("(v2)") and story.scenes[2].text.endswith("(v2)")
    assert story.story_meta.tone == "calm" and story.story_meta.story_title == "Mia and the Moon"
    assert reads.load_story_field(engine, ["mia-1"], "base_style")["mia-1"]["lighting"] == (
        "candle light"
    )
    moments = reads.load_scenes(engine, ["mia-1"])["moment"].tolist()
    assert moments == ["Mia waves at a fox", "moment 2 run:r2", "moment 3 run:r2"]
    row = _rows(engine, "select title, field_sources from stories")[0]
    assert row["title"] == "Mia and the Moon"
    assert {k for k, v in row["field_sources"].items() if v == "user"} == {
        "title",
        "story_meta",
        "base_style",
    }
    kept = [r.getMessage() for r in caplog.records if "kept user edits" in r.getMessage()]
    assert any("text@2" in m and "story_meta" in m and "title" in m for m in kept)
    assert any("moment@1" in m for m in kept) and any("base_style" in m for m in kept)
    # No audit row for a kept field: the r2 rows touch only what the AI really changed.
    r2 = {(r["field"], r["scene_number"]) for r in _audit(engine, "mia-1") if r["run_id"] == "r2"}
    assert r2 == {("text", 1), ("text", 3), ("moment", 2), ("moment", 3)}

    repo.save_structured_story(
        engine,
        "mia-1",
        story_for(StoryRequest(story_id="mia-1", child_name="Mia", age=5, scene_count=3)),
        PROV,
        "run:r3",
        overwrite_user_edits=True,
    )
    story = reads.load_stories(engine, ["mia-1"])["mia-1"]
    assert story.scenes[1].text != "Mia hums to the moon."
    assert story.story_meta.story_title != "Mia and the Moon"
    row = _rows(engine, "select title, story_meta, field_sources from stories")[0]
    assert row["title"] == row["story_meta"]["story_title"]
    assert row["field_sources"]["title"] == row["field_sources"]["story_meta"] == "ai"
    assert row["field_sources"]["base_style"] == "user"  # not written by this step


def test_edit_writes_user_source_and_one_audit_row_per_changed_field(engine):
    _generate_by_hand(engine)
    before = len(_audit(engine, "mia-1"))
    changes = edit_story(
        engine,
        "mia-1",
        by="alice",
        title="Mia and the Moon",
        fields={"child_profile.name": "Mia Rose", "child_profile.age": "6"},
    )
    assert {(c["asset"], c["field"]) for c in changes} == {
        ("structured_story", "title"),
        ("structured_story", "story_meta"),
        ("structured_story", "child_profile"),
    }
    rows = _audit(engine, "mia-1")[before:]
    assert [(r["field"], r["source"], r["updated_by"], r["run_id"]) for r in rows] == [
        (c["field"], "user", "alice", None) for c in changes
    ]
    assert [r["id"] for r in rows] == [c["id"] for c in changes]
    assert all(
        r["new_value_sha256"] == c["new_value_sha256"] for r, c in zip(rows, changes, strict=True)
    )
    story = _rows(engine, "select * from stories")[0]
    assert story["child_profile"]["name"] == "Mia Rose" and story["child_profile"]["age"] == 6
    assert story["story_meta"]["story_title"] == story["title"] == "Mia and the Moon"
    assert story["updated_by"] == "alice"
    assert story["provenance"]["user_edit"]["updated_by"] == "alice"
    assert story["provenance"]["structured_story"]["model"] == "m1"  # the AI facts stay
    # story_meta changed only as the title's mirror: the rest of it stays the AI's.
    assert story["field_sources"]["story_meta"] == "ai"
    assert story["field_sources"]["title"] == story["field_sources"]["child_profile"] == "user"
    # The same value again changes nothing and writes nothing.
    assert edit_story(engine, "mia-1", by="bob", title="Mia and the Moon") == []
    assert len(_audit(engine, "mia-1")) == before + 3


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"scene_number": 2, "text": "   "}, "text"),
        ({"scene_number": 2, "moment": ""}, "moment"),
        ({"text": "no scene given"}, "scene_number"),
        ({"scene_number": 9, "text": "x"}, "no scene 9"),
        ({"title": ""}, "title"),
        ({"fields": {"child_profile.age": "9"}}, "child_profile.age"),
        ({"fields": {"child_profile.nickname": "Mimi"}}, "child_profile.nickname"),
        ({"fields": {"story_meta.tone": ""}}, "story_meta.tone"),
        ({"fields": {"story_meta.scene_count": "4"}}, "story_meta.scene_count"),
        ({"fields": {"plot_twist": "yes"}}, "plot_twist"),
        ({"fields": {"story_meta": {"tone": "calm"}}}, "story_meta.value_to_teach"),
        ({"fields": {"side_character.exists": "maybe"}}, "side_character.exists"),
        ({"fields": {"visual_profile.character_prompt": "x"}}, "no visual_profile yet"),
        ({"fields": {"child_profile.name": "Ok"}, "title": " "}, "title"),
    ],
)
def test_invalid_edit_names_the_field_and_changes_nothing(engine, kwargs, named):
    _generate_by_hand(engine)
    snapshot = [
        _rows(engine, f"select * from {t} order by 1, 2") for t in ("stories", "scenes")
    ] + [_audit(engine, "mia-1")]
    with pytest.raises(EditError, match=named):
        edit_story(engine, "mia-1", by="alice", **kwargs)
    after = [_rows(engine, f"select * from {t} order by 1, 2") for t in ("stories", "scenes")]
    assert [*after, _audit(engine, "mia-1")] == snapshot


def test_edit_of_unknown_story_names_it(engine):
    with pytest.raises(repo.StoryNotFound, match="'nobody-1'"):
        edit_story(engine, "nobody-1", by="alice", title="x")


def _changed_values(before: dict, after: dict) -> set:
    return {key for key in after if before.get(key) != after[key]}


def _values(engine, sid):
    """Every audited value of a story, keyed like audit_log rows: (asset, field, scene)."""
    story = _rows(engine, "select * from stories where story_id = :sid", sid=sid)[0]
    out = {
        ("structured_story", f, None): story[f]
        for f in ("child_profile", "side_character", "story_meta", "title")
    }
    out |= {(f, f, None): story[f] for f in ("visual_profile", "base_style")}
    out[("book", "book_uri", None)] = story["book_uri"]
    out[("storybook_pdf", "pdf_uri", None)] = story["pdf_uri"]
    out[("storybook_epub", "epub_uri", None)] = story["epub_uri"]
    for f in ("character_sheet_uri", "image_seed"):
        out[("character_sheet", f, None)] = story[f]
    for s in _rows(engine, "select * from scenes where story_id = :sid", sid=sid):
        n = s["scene_number"]
        out[("structured_story", "text", n)] = s["text"]
        out[("scene_moments", "moment", n)] = s["moment"]
        for f in ("image_prompt", "image_uri", "image_sha256", "image_seed"):
            out[("scene_images", f, n)] = s[f]
    return out


def test_generate_edit_rerun_audit_log_holds_exactly_the_changes(engine, instance, test_defs):
    repo.register_request(
        engine,
        "ava-1",
        StoryRequest(story_id="ava-1", child_name="Ava", age=5, scene_count=3),
        by="test",
    )
    [first] = materialize_stories(test_defs, instance, ["ava-1"])
    assert first.success
    generated = _audit(engine, "ava-1")
    assert {(r["source"], r["run_id"]) for r in generated} == {("ai", first.run_id)}
    assert {(r["asset"], r["field"], r["scene_number"]) for r in generated} == set(
        _values(engine, "ava-1")
    )  # one row per stored value
    assert len(generated) == len(_values(engine, "ava-1")) == 11 + 3 * 6

    edit_story(engine, "ava-1", by="alice", scene_number=2, text="Ava counts the stars.")
    edit_story(engine, "ava-1", by="alice", fields={"story_meta.tone": "calm"})
    edited = _audit(engine, "ava-1")[len(generated) :]
    assert [(r["field"], r["scene_number"], r["source"], r["updated_by"]) for r in edited] == [
        ("text", 2, "user", "alice"),
        ("story_meta", None, "user", "alice"),
    ]

    before = _values(engine, "ava-1")
    [rerun] = materialize_stories(test_defs, instance, ["ava-1"])
    assert rerun.success
    after = _values(engine, "ava-1")
    assert after[("structured_story", "text", 2)] == "Ava counts the stars."
    assert after[("structured_story", "story_meta", None)]["tone"] == "calm"
    rerun_rows = _audit(engine, "ava-1")[len(generated) + len(edited) :]
    assert {r["run_id"] for r in rerun_rows} == {rerun.run_id}
    # Exactly one AI row per value the re-run changed (the edited scene's moment and image,
    # the book), none for the kept edits.
    got = [(r["asset"], r["field"], r["scene_number"]) for r in rerun_rows]
    assert sorted(got, key=str) == sorted(_changed_values(before, after), key=str)
    assert ("structured_story", "text", 2) not in got
    assert ("scene_moments", "moment", 2) in got and ("book", "book_uri", None) in got


@pytest.fixture()
def cli(tmp_path, database_url, monkeypatch):
    for name, value in {
        "STORYGEN_DATABASE_URL": database_url,
        "STORYGEN_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),  # a throwaway instance for this test
        "STORYGEN_IMAGE_WIDTH": "320",
        "STORYGEN_IMAGE_HEIGHT": "240",
        "USER": "carol",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()

    def invoke(*args):
        return CliRunner().invoke(main, list(args))

    yield invoke
    # The CLI attached a log handler to CliRunner's (now closed) stderr.
    detach_handlers()


def test_cli_edit_records_runless_materialization_and_audit_lists_the_changes(cli, engine):
    assert cli("demo", "--stories", "1", "--json").exit_code == 0
    result = cli(
        "edit",
        "demo-01",
        "--scene",
        "2",
        "--text",
        "A new page.",
        "--moment",
        "a quiet pond",
        "--set",
        "child_profile.favorites.animal=owl",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {(c["asset"], c["field"]) for c in payload["changes"]} == {
        ("structured_story", "text"),
        ("structured_story", "child_profile"),
        ("scene_moments", "moment"),
    }
    instance = dg.DagsterInstance.get()
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey("structured_story"))
        mat = event.asset_materialization
        assert event.run_id == "" and mat.partition == "demo-01"
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["source"] == "user" and meta["updated_by"] == "carol"
        assert meta["fields"] == ["child_profile", "text"] and meta["scene_number"] == 2
        moments = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("scene_moments"), asset_partitions=["demo-01"]
            ),
            limit=1,
        ).records[0]
        assert moments.asset_materialization.metadata["fields"].value == ["moment"]
        assert moments.run_id == ""
    finally:
        instance.dispose()

    audit = cli("audit", "demo-01", "--json")
    assert audit.exit_code == 0, audit.output
    listed = json.loads(audit.stdout)
    table = _audit(engine, "demo-01")
    keys = ("id", "asset", "field", "scene_number", "source", "updated_by", "run_id")
    assert [{k: e[k] for k in keys} for e in listed] == [{k: r[k] for k in keys} for r in table]
    assert [e["new_value_sha256"] for e in listed] == [r["new_value_sha256"] for r in table]
    ai = [e for e in listed if e["source"] == "ai"]
    assert ai and all(e["lineage"] == "event_log" for e in ai)
    # The book is assembled in code: no model. Every other AI row names the model it came from.
    assert all(e["model"] for e in ai if e["asset"] != "book")
    assert {e["prompt_version"] for e in ai if e["asset"] == "structured_story"} != {None}
    user = [e for e in listed if e["source"] == "user"]
    assert len(user) == 3
    assert all(e["lineage"] == "runless_materialization" for e in user)

    text = cli("audit", "demo-01")
    assert text.exit_code == 0 and "carol" in text.stdout and "structured_story" in text.stdout


def test_cli_edit_and_audit_reject_unknown_story_and_bad_value(cli):
    missing = cli("edit", "nobody-1", "--title", "x")
    assert missing.exit_code != 0 and "'nobody-1' not found" in missing.output
    assert "'nobody-1' not found" in cli("audit", "nobody-1").output
    assert cli("demo", "--stories", "1").exit_code == 0
    bad = cli("edit", "demo-01", "--set", "child_profile.age=9")
    assert bad.exit_code != 0 and "child_profile.age" in bad.output


def test_cli_edit_then_status_shows_stale_and_run_stale_only_refreshes_just_that(cli, engine):
    assert cli("demo", "--stories", "1").exit_code == 0
    fresh = json.loads(cli("status", "demo-01", "--json").stdout)
    assert fresh["status"] == "succeeded" and fresh["stale"] == []
    edited = cli("edit", "demo-01", "--scene", "2", "--text", "Under the bridge, a lantern glows.")
    assert edited.exit_code == 0, edited.output
    stale = json.loads(cli("status", "demo-01", "--json").stdout)["stale"]
    assert {(i["asset"], i["scene_number"]) for i in stale} == {
        ("scene_moments", 2),
        ("scene_images", 2),
        ("storybook", None),
        ("storybook_pdf", None),
        ("storybook_epub", None),
    }
    before = _rows(engine, "select scene_number, moment, updated_at from scenes order by 1")
    run = cli("run", "demo-01", "--stale-only")
    assert run.exit_code == 0, run.output
    assert (
        "refreshing scene_moments, scene_images, storybook, storybook_pdf, storybook_epub"
        in run.output
    )
    after = _rows(engine, "select scene_number, text, moment, updated_at from scenes order by 1")
    assert after[1]["text"] == "Under the bridge, a lantern glows."  # the edit is kept
    assert "lantern" in after[1]["moment"] and after[1]["moment"] != before[1]["moment"]
    assert [r["updated_at"] for i, r in enumerate(after) if i != 1] == [
        r["updated_at"] for i, r in enumerate(before) if i != 1
    ]
    assert json.loads(cli("status", "demo-01", "--json").stdout)["stale"] == []
    again = cli("run", "demo-01", "--stale-only")
    assert again.exit_code == 0 and "nothing is stale" in again.output


def test_after_an_edit_only_the_edited_storys_up_to_date_check_warns(cli):
    assert cli("demo", "--stories", "3", "--json").exit_code == 0
    result = cli("edit", "demo-02", "--scene", "2", "--text", "Mia hums a new song.")
    assert result.exit_code == 0, result.output
    # A second edit of the same story reports its checks again (runless, like the first).
    result = cli("edit", "demo-02", "--scene", "2", "--text", "Mia hums a new song, softly.")
    assert result.exit_code == 0, result.output
    instance = dg.DagsterInstance.get()
    try:
        for asset in ("structured_story", "scene_moments", "storybook"):
            key = dg.AssetCheckKey(dg.AssetKey(asset), "up_to_date")
            infos = instance.event_log_storage.get_asset_check_partition_info([key])
            status = {i.partition_key: i.latest_execution_status.value for i in infos}
            # The user's text is theirs (never stale); the moment drawn from the old text and
            # the book are out of date, for the edited story only.
            edited = "SUCCEEDED" if asset == "structured_story" else "FAILED"
            assert status == {"demo-01": "SUCCEEDED", "demo-02": edited, "demo-03": "SUCCEEDED"}
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("scene_moments"), "up_to_date"), limit=1
        )
        evaluation = history[0].event.dagster_event.event_specific_data
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["problems"].value == ["scene 2: inputs changed"]
    finally:
        instance.dispose()
