"""Staleness from input fingerprints, and stories built with an older prompt or model.

A value is stale when the fingerprint of its inputs now (domain/fingerprints.py, computed from
what is stored) differs from the fingerprint stored with it; what depends on a stale or
missing value is stale too (a scene's image after its moment, the sheet and every image after
the visual profile, every image after the character sheet, the book after any scene)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.assets import ASSETS, PRINT_FILES, PROMPT_OF
from storygen_dagster.domain.plan import user_owned, value_state
from storygen_dagster.domain.printing import PrintSettings
from storygen_dagster.domain.prompts import PROMPT_VERSIONS
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import reads, sheets
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import scenes, stories


def load_row_facts(
    engine: sa.Engine, story_ids: Iterable[str], column: str = "input_fingerprints"
) -> tuple[dict[str, dict], dict[tuple[str, int], dict]]:
    """A per-row JSONB column (input_fingerprints or field_sources) of the stories and of
    their scenes: ({story_id: {...}}, {(story_id, scene_number): {...}})."""
    ids = list(story_ids)
    with db_op(f"load_{column}", story_id=",".join(ids)) as op, engine.connect() as conn:
        story_rows: Sequence[tuple[str, dict | None]] = conn.execute(
            sa.select(stories.c.story_id, stories.c[column]).where(stories.c.story_id.in_(ids))
        ).all()
        scene_rows: Sequence[tuple[str, int, dict | None]] = conn.execute(
            sa.select(scenes.c.story_id, scenes.c.scene_number, scenes.c[column]).where(
                scenes.c.story_id.in_(ids)
            )
        ).all()
        op.rows = len(story_rows) + len(scene_rows)
    return (
        {sid: dict(f or {}) for sid, f in story_rows},
        {(sid, int(n)): dict(f or {}) for sid, n, f in scene_rows},
    )


def load_fingerprints(engine: sa.Engine, story_ids: Iterable[str]):
    return load_row_facts(engine, story_ids, "input_fingerprints")


def _item(asset: str, reason: str, scene: int | None = None) -> dict:
    return {"asset": asset, "scene_number": scene, "reason": reason}


def stale_items(
    engine: sa.Engine, story_id: str, printing: PrintSettings | None = None
) -> list[dict]:
    """Every stale or missing value of the story: [{asset, scene_number, reason}], in
    pipeline order. An empty list: everything is built from its current inputs. `printing`:
    the print settings the books are compared with (unset: STORYGEN_PRINT_*, the language)."""
    printing = printing or PrintSettings.from_settings(get_settings())
    requests = reads.load_requests(engine, [story_id])
    if story_id not in requests:
        raise LookupError(f"story_id {story_id!r} not found")
    story_fps, scene_fps = load_fingerprints(engine, [story_id])
    story_src, scene_src = load_row_facts(engine, [story_id], "field_sources")
    stored = story_fps.get(story_id, {})
    # A value a user edited is theirs: never stale (AI re-runs keep it), though what is built
    # from it is.
    user_fields = user_owned(story_src.get(story_id))
    story = reads.load_stories(engine, [story_id]).get(story_id)
    items: list[dict] = []
    why = value_state(
        fp.structured_story(requests[story_id]), stored.get("structured_story"), story is not None
    )
    if why:
        items.append(_item("structured_story", why))
    if story is None:
        return items + [_item(a, "upstream missing") for a in ASSETS[1:]]
    upstream_story = bool(why)
    fields = {}
    field_stale = {}
    for name in ("visual_profile", "base_style"):
        fields[name] = reads.load_story_field(engine, [story_id], name).get(story_id)
        why = value_state(fp.story_level(name, story), stored.get(name), fields[name] is not None)
        why = why or ("upstream stale" if upstream_story else None)
        if name in user_fields and fields[name] is not None:
            why = None
        field_stale[name] = bool(why)
        if why:
            items.append(_item(name, why))
    profile, style = fields["visual_profile"], fields["base_style"]
    sheet = sheets.load_sheets(engine, [story_id]).get(story_id)
    seed = sheets.stored_seed(engine, story_id)
    sheet_why = _sheet_state(story, profile, style, sheet, seed, stored, user_fields)
    sheet_why = sheet_why or (
        "upstream stale" if upstream_story or any(field_stale.values()) else None
    )
    if sheet_why:
        items.append(_item(sheets.ASSET, sheet_why))
    frame = reads.load_scenes(engine, [story_id])
    book_reason = None
    for row in frame.to_dict("records"):
        n = int(row["scene_number"])
        fps = scene_fps.get((story_id, n), {})
        why = value_state(fp.scene_moment(story, n), fps.get("scene_moments"), bool(row["moment"]))
        why = why or ("upstream stale" if upstream_story else None)
        if row["moment"] and user_owned(scene_src.get((story_id, n)), ["moment"]):
            why = None
        if why:
            items.append(_item("scene_moments", why, n))
        image_why: str | None
        if why or not profile or not style or sheet is None:
            image_why = "upstream stale" if why else "upstream missing"
            if not row["image_uri"]:
                image_why = "missing"
        else:
            current = fp.scene_image(story, profile, style, row["moment"], sheet["sha256"], seed)
            image_why = value_state(current, fps.get("scene_images"), bool(row["image_uri"]))
            if not image_why and (any(field_stale.values()) or sheet_why):
                image_why = "upstream stale"
        if image_why:
            items.append(_item("scene_images", image_why, n))
            book_reason = "upstream stale"
    book_uri = reads.load_story_field(engine, [story_id], "book_uri").get(story_id)
    if book_reason is None:
        current = fp.storybook(
            story,
            [
                (int(r["scene_number"]), r["text"], r["image_sha256"])
                for r in frame.to_dict("records")
            ],
            sheet["sha256"] if sheet else None,
            printing.language,
        )
        book_reason = value_state(current, stored.get("storybook"), bool(book_uri))
    elif not book_uri:
        book_reason = "missing"
    if book_reason:
        items.append(_item("storybook", book_reason))
    rows = frame.to_dict("records")
    pages = [(int(r["scene_number"]), r["text"], r["moment"], r["image_sha256"]) for r in rows]
    for asset, column in PRINT_FILES.items():
        built = bool(reads.load_story_field(engine, [story_id], column).get(story_id))
        if book_reason:
            why = "upstream stale" if built else "missing"
        else:
            why = value_state(
                fp.print_file(asset, story, pages, printing), stored.get(asset), built
            )
        if why:
            items.append(_item(asset, why))
    return items


def _sheet_state(story, profile, style, sheet, seed, stored, user_fields) -> str | None:
    """Why the character sheet is not current (None: it is, or it is the user's)."""
    if sheet is None:
        return "missing"
    if sheets.FIELD in user_fields:
        return None
    if not profile or not style or seed is None:
        return "upstream missing"
    current = fp.character_sheet(story, profile, style, seed)
    return value_state(current, stored.get(sheets.ASSET), True)


def stale_assets(items: list[dict]) -> list[str]:
    """The assets to re-materialize for `items`, in pipeline order."""
    wanted = {i["asset"] for i in items}
    return [a for a in ASSETS if a in wanted]


def outdated_stories(
    engine: sa.Engine, models: Mapping[str, str], story_ids: Iterable[str] | None = None
) -> list[dict]:
    """Stories with any value built by another prompt version than today's, or another model
    than `models` names per asset (e.g. {"structured_story": "gpt-4o-mini", ...}); each reason
    starts with the asset it is about."""
    out = []
    story_query = sa.select(stories.c.story_id, stories.c.provenance).order_by(stories.c.story_id)
    scene_query = sa.select(scenes.c.story_id, scenes.c.scene_number, scenes.c.provenance)
    if story_ids is not None:
        ids = list(story_ids)
        story_query = story_query.where(stories.c.story_id.in_(ids))
        scene_query = scene_query.where(scenes.c.story_id.in_(ids))
    with db_op("outdated_stories") as op, engine.connect() as conn:
        rows: Sequence[tuple[str, dict | None]] = conn.execute(story_query).all()
        scene_rows: Sequence[tuple[str, int, dict | None]] = conn.execute(scene_query).all()
        op.rows = len(rows) + len(scene_rows)
    provs: dict[str, list[tuple[str, int | None, dict]]] = {}
    for sid, prov in rows:
        for asset, p in (prov or {}).items():
            provs.setdefault(sid, []).append((asset, None, p))
    for sid, n, prov in scene_rows:
        for asset, p in (prov or {}).items():
            if asset != "structured_story":  # the scene text's provenance repeats the story's
                provs.setdefault(sid, []).append((asset, n, p))
    for sid in sorted(provs):
        reasons = []
        for asset, scene_number, p in provs[sid]:
            where = asset if scene_number is None else f"{asset} scene {scene_number}"
            prompt = PROMPT_OF.get(asset)
            if prompt and p.get("prompt_version") not in (None, PROMPT_VERSIONS[prompt]):
                reasons.append(
                    f"{where}: prompt {prompt} {p['prompt_version']} "
                    f"(current {PROMPT_VERSIONS[prompt]})"
                )
            want = models.get(asset)
            if want and p.get("source", "ai") == "ai" and p.get("model") != want:
                reasons.append(f"{where}: model {p.get('model')} (current {want})")
        if reasons:
            out.append({"story_id": sid, "reasons": sorted(set(reasons))})
    return out


def out_of_date(
    engine: sa.Engine, story_id: str, models: Mapping[str, str]
) -> dict[str, list[str]]:
    """Per asset, why the story's value is not up to date (an empty list: it is): built from
    inputs whose fingerprint changed, missing, built after a stale upstream value, or by an
    older prompt version or another model. One answer for `storygen status --outdated`, the
    `up_to_date` checks and `storygen edit`."""
    found: dict[str, list[str]] = {asset: [] for asset in ASSETS}
    for item in stale_items(engine, story_id):
        where = "" if item["scene_number"] is None else f"scene {item['scene_number']}: "
        found[item["asset"]].append(where + item["reason"])
    for row in outdated_stories(engine, models, [story_id]):
        for reason in row["reasons"]:
            asset, _, rest = reason.partition(": ")
            name, _, scene = asset.partition(" scene ")
            found.setdefault(name, []).append((f"scene {scene}: " if scene else "") + rest)
    return found
