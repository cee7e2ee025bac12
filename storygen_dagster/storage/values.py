"""Each story asset's value, read and written through the same functions the engine uses (reads,
the repository, the object store): the one code path the IO managers are built on.

- structured_story, visual_profile, base_style: the pydantic models
- scene_moments: DataFrame (scene_number, text, moment)
- scene_images: DataFrame (scene_number, image_prompt, image_uri, image_sha256), plus the PNG
  bytes as `image_png` with `with_bytes=True`
- character_sheet: the sheet's PNG bytes, or its URI with `as_uri=True`
- storybook: the book's HTML (str), or its URI with `as_uri=True`
- storybook_pdf, storybook_epub: the file's bytes, or its URI with `as_uri=True`
- story_catalog: the story's catalog row, a one-row DataFrame (storage/catalog.py)

Every function takes and returns values keyed by story id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from storygen_dagster.domain.assets import PRINT_FILES
from storygen_dagster.domain.models import BaseStyle, Provenance, StructuredStory, VisualProfile
from storygen_dagster.storage import catalog, reads, sheets
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.objects import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

MOMENT_COLUMNS = ["scene_number", "text", "moment"]
IMAGE_COLUMNS = ["scene_number", "image_prompt", "image_uri", "image_sha256"]
IMAGE_WRITES = ["image_prompt", "image_uri", "image_sha256"]
_FIELDS: dict[str, type[VisualProfile] | type[BaseStyle]] = {
    "visual_profile": VisualProfile,
    "base_style": BaseStyle,
}
DATABASE_ASSETS = frozenset({"structured_story", *_FIELDS, "scene_moments", "story_catalog"})
OBJECT_ASSETS = frozenset({"character_sheet", "scene_images", "storybook", *PRINT_FILES})


class MissingValue(LookupError):
    """A story has no stored value for an asset: never materialized, failed or held."""

    def __init__(self, asset: str, story_id: str, why: str = "nothing is stored"):
        super().__init__(
            f"{asset} of story {story_id!r}: {why}; materialize {asset} for this story first"
        )
        self.asset, self.story_id = asset, story_id


def read(
    engine: sa.Engine,
    store: ObjectStore | None,
    asset: str,
    story_ids: Iterable[str],
    *,
    with_bytes: bool = False,
    as_uri: bool = False,
) -> dict[str, Any]:
    """{story_id: value} for every story asked for, in that order; MissingValue names the first
    story without one."""
    ids = list(story_ids)
    why: dict[str, str] = {}
    if asset == "structured_story":
        found: dict[str, Any] = reads.load_stories(engine, ids)
    elif asset in _FIELDS:
        stored = reads.load_story_field(engine, ids, asset)
        found = {sid: _FIELDS[asset].model_validate(v) for sid, v in stored.items()}
    elif asset in ("scene_moments", "scene_images"):
        found, why = _scene_frames(engine, asset, ids)
        if with_bytes and asset == "scene_images":
            for frame in found.values():
                frame["image_png"] = [_store(store).get(uri) for uri in frame["image_uri"]]
    elif asset == "character_sheet":
        sheet_uris = {s: v["uri"] for s, v in sheets.load_sheets(engine, ids).items()}
        found = sheet_uris if as_uri else {s: _store(store).get(u) for s, u in sheet_uris.items()}
    elif asset == "storybook":
        uris: dict[str, Any] = reads.load_story_field(engine, ids, "book_uri")
        found = uris if as_uri else {s: _store(store).get(u).decode() for s, u in uris.items()}
    elif asset in PRINT_FILES:
        files: dict[str, Any] = reads.load_story_field(engine, ids, PRINT_FILES[asset])
        found = files if as_uri else {s: _store(store).get(u) for s, u in files.items()}
    elif asset == "story_catalog":
        found = catalog.load_rows(engine, ids)
    else:
        raise ValueError(f"no stored value for asset {asset!r}")
    for sid in ids:
        if sid not in found:
            raise MissingValue(asset, sid, why.get(sid, "nothing is stored"))
    return {sid: found[sid] for sid in ids}


def _scene_frames(
    engine: sa.Engine, asset: str, ids: list[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    column, columns = (
        ("moment", MOMENT_COLUMNS) if asset == "scene_moments" else ("image_uri", IMAGE_COLUMNS)
    )
    found: dict[str, pd.DataFrame] = {}
    why: dict[str, str] = {}
    for key, rows in reads.load_scenes(engine, ids).groupby("story_id", sort=False):
        sid = str(key)
        lacking = rows.loc[rows[column].isna(), "scene_number"].tolist()
        if lacking:
            why[sid] = f"scenes {', '.join(map(str, lacking))} have no {column}"
        else:
            found[sid] = rows[columns].reset_index(drop=True)
    return found, why


def write(
    engine: sa.Engine,
    store: ObjectStore | None,
    asset: str,
    values: Mapping[str, Any],
    *,
    by: str,
    provenance: Provenance,
) -> dict[str, Any]:
    """Store {story_id: value} with the engine's writes (user edits kept, every change
    audited); returns what was written: `rows`, and `uris` for objects."""
    import pandas as pd

    uris: list[str] = []
    rows = len(values)
    if asset == "structured_story":
        for sid, story in values.items():
            model = StructuredStory.model_validate(story)
            rows = repo.save_structured_story(engine, sid, model, provenance, by)
    elif asset in _FIELDS:
        for sid, value in values.items():
            data = _FIELDS[asset].model_validate(value).model_dump(mode="json")
            repo.save_story_field(engine, sid, asset, data, provenance, by)
    elif asset == "scene_moments":
        frame = _scene_rows(engine, values, ["moment"], provenance)
        rows = repo.upsert_scene_columns(engine, frame, ["moment"], asset, by)
    elif asset == "scene_images":
        frame = _scene_rows(engine, _put_images(_store(store), values), IMAGE_WRITES, provenance)
        rows = repo.upsert_scene_columns(engine, frame, IMAGE_WRITES, asset, by)
        uris = frame["image_uri"].tolist()
    elif asset == "character_sheet":
        for sid, png in values.items():
            key = _store(store).key_for("images", sid, bytes(png), ".png")
            uris.append(_store(store).put(key, bytes(png)))
            sheets.save_sheet(engine, sid, uris[-1], provenance, by)
    elif asset == "storybook":
        for sid, book in values.items():
            html = book.encode() if isinstance(book, str) else bytes(book)
            key = _store(store).key_for("books", sid, html, ".html")
            uris.append(_store(store).put(key, html))
            repo.set_book(engine, sid, uris[-1], by)
    elif asset in PRINT_FILES:
        suffix = ".pdf" if asset == "storybook_pdf" else ".epub"
        for sid, data in values.items():
            key = _store(store).key_for("books", sid, bytes(data), suffix)
            uris.append(_store(store).put(key, bytes(data)))
            repo.set_print_file(engine, sid, asset, uris[-1], by)
    elif asset == "story_catalog":
        frames = [f.assign(story_id=sid) for sid, f in values.items()]
        rows = catalog.upsert_rows(engine, pd.concat(frames, ignore_index=True), by)
    else:
        raise ValueError(f"cannot store a value for asset {asset!r}")
    return {"rows": rows, "uris": uris}


def _scene_rows(
    engine: sa.Engine,
    values: Mapping[str, pd.DataFrame],
    columns: list[str],
    provenance: Provenance,
) -> pd.DataFrame:
    """The upsert's rows: the given columns per scene, with the stored scene text (the text
    belongs to structured_story; a scene without a stored text cannot take a moment or image)."""
    import pandas as pd

    frames = [f.assign(story_id=sid) for sid, f in values.items()]
    given = pd.concat(frames, ignore_index=True)[["story_id", "scene_number", *columns]]
    given["scene_number"] = given["scene_number"].astype(int)
    texts = reads.load_scenes(engine, list(values))[["story_id", "scene_number", "text"]]
    merged = given.merge(texts, on=["story_id", "scene_number"], how="left")
    lacking = merged[merged["text"].isna()]
    if not lacking.empty:
        first = lacking.iloc[0]
        raise MissingValue(
            "structured_story", first["story_id"], f"scene {first['scene_number']} has no text"
        )
    prov = pd.Series([provenance.model_dump()] * len(merged), index=merged.index, dtype=object)
    return merged.assign(provenance=prov)


def _put_images(store: ObjectStore, values: Mapping[str, pd.DataFrame]) -> dict:
    """PNG bytes (`image_png`) go into the store under their content key; a frame without them
    must name images already in the store."""
    out = {}
    for sid, given in values.items():
        frame = given.copy()
        if "image_png" in frame:
            pngs = frame["image_png"].tolist()
            keys = [store.key_for("images", sid, png, ".png") for png in pngs]
            frame["image_uri"] = [store.put(k, png) for k, png in zip(keys, pngs, strict=True)]
            frame["image_sha256"] = [k.rsplit("/", 1)[1].removesuffix(".png") for k in keys]
        for uri in frame["image_uri"]:
            if not store.exists(uri):
                raise MissingValue("scene_images", sid, f"image {uri} is not in the object store")
        out[sid] = frame
    return out


def _store(store: ObjectStore | None) -> ObjectStore:
    if store is None:
        raise ValueError("images and books need the object store")
    return store
