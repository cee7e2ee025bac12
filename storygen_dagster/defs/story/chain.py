"""One story's chain of steps, run as one coroutine per story inside the batch step.

story -> visual profile + base style (together) -> scene moments -> scene images -> book.
Each stage reads its inputs from Postgres (so user edits and earlier runs are seen), writes its
values with their provenance and input fingerprint, and logs one AssetMaterialization for the
story's partition with that story's own facts. A stage that fails stops only its story."""

import asyncio
import base64
import logging
import time

import dagster as dg
import pandas as pd

from storygen_dagster.defs.story.keys import (
    BOOK,
    IMAGES,
    MOMENTS,
    STORY_FIELDS,
    STRUCTURED,
    STYLE,
    VISUAL,
)
from storygen_dagster.defs.story.metadata import provenance_metadata
from storygen_dagster.defs.story.quality import (
    CheckLedger,
    StoryCheckFailed,
    check_key,
    check_stored,
)
from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.book import Page, render_book
from storygen_dagster.domain.checks import (
    DEFAULT_BLOCKLIST,
    prompt_budget_problems,
    required_field_problems,
    scene_count_problems,
    story_texts,
    unsafe_terms,
)
from storygen_dagster.domain.compose import compose_image_prompt
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.images import ImageCheckError, inspect_png, thumbnail_jpeg
from storygen_dagster.domain.models import BaseStyle, Provenance, StoryRequest, VisualProfile
from storygen_dagster.providers.base import CallContext, ImageRejected, ImageService, StoryLLM
from storygen_dagster.providers.moderation import Moderation
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.objects import ObjectStore
from storygen_dagster.storage.staleness import load_row_facts

log = logging.getLogger("storygen.pipeline")


async def _stage(asset: str, coro):
    """Await `coro`; an exception leaves tagged with the asset whose stage raised it."""
    try:
        return await coro
    except Exception as exc:
        if not hasattr(exc, "storygen_asset"):
            exc.storygen_asset = asset  # type: ignore[attr-defined]
        raise


class StoryChain:
    """Everything a batch step shares: clients, stores, settings, the selection and the
    check ledger. `run(sid)` drives one story."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        *,
        engine,
        store: ObjectStore,
        llm: StoryLLM,
        images: ImageService,
        size: tuple[int, int],
        budget: int,
        blocklist: list[str] | None,
        moderation: Moderation | None = None,
        fresh: bool,
        stale_only: bool,
        overwrite_user_edits: bool,
    ):
        self.context = context
        self.engine, self.store, self.llm, self.images = engine, store, llm, images
        self.width, self.height = size
        self.budget = budget
        self.blocklist = blocklist or list(DEFAULT_BLOCKLIST)
        self.moderation = moderation
        self.fresh, self.stale_only = fresh, stale_only
        self.overwrite = overwrite_user_edits
        self.selected = set(context.selected_asset_keys)
        self.selected_checks = set(context.selected_asset_check_keys)
        self.by = f"run:{context.run.run_id}"
        self.checks = CheckLedger()
        self.done: dict[str, list[str]] = {}  # story -> assets materialized
        self._facts: dict[tuple[str, str], tuple[dict, dict[int, dict]]] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _ctx(self, sid: str, asset: str, scene: int | None = None) -> CallContext:
        return CallContext(story_id=sid, asset=asset, scene_number=scene, fresh=self.fresh)

    def _materialized(self, sid: str, asset: dg.AssetKey, metadata: dict) -> None:
        self.context.log_event(
            dg.AssetMaterialization(asset_key=asset, partition=sid, metadata=metadata)
        )
        self.done.setdefault(sid, []).append(asset.to_user_string())

    def _check(self, sid: str, asset: dg.AssetKey, name: str, problems: list[str], hold=False):
        key = check_key(asset, name)
        if key not in self.selected_checks:
            return
        if self.checks.record(key, sid, problems):
            raise StoryCheckFailed(key, problems, hold=hold)

    async def _story(self, sid: str):
        stories = await asyncio.to_thread(reads.load_stories, self.engine, [sid])
        if sid not in stories:
            raise LookupError(f"story {sid} has no structured_story yet")
        return stories[sid]

    async def _field(self, sid: str, name: str) -> dict:
        values = await asyncio.to_thread(reads.load_story_field, self.engine, [sid], name)
        if sid not in values:
            raise LookupError(f"story {sid} has no {name} yet")
        return values[sid]

    async def _row_facts(self, sid: str, column: str) -> tuple[dict, dict[int, dict]]:
        """The story's stored input_fingerprints / field_sources, read once per story: a stage
        only writes its own fingerprint key, which no later stage reads, and an AI write never
        marks a field 'user', so the first read stays right for the whole chain."""
        key = (sid, column)
        if key not in self._facts:
            story, by_scene = await asyncio.to_thread(load_row_facts, self.engine, [sid], column)
            self._facts[key] = (
                story.get(sid, {}),
                {n: f for (s, n), f in by_scene.items() if s == sid},
            )
        return self._facts[key]

    async def _stored_fingerprints(self, sid: str) -> tuple[dict, dict[int, dict]]:
        return await self._row_facts(sid, "input_fingerprints")

    async def _user_owned(self, sid: str) -> tuple[set[str], dict[int, set[str]]]:
        """Fields a user edited last (kept on AI re-runs unless overwrite): their provider
        calls are skipped rather than paid for and thrown away."""
        if self.overwrite:
            return set(), {}
        story, scenes = await self._row_facts(sid, "field_sources")
        owned = {f for f, src in story.items() if src == "user"}
        return owned, {n: {f for f, src in fs.items() if src == "user"} for n, fs in scenes.items()}

    # -- the chain ---------------------------------------------------------------------------
    async def run(self, sid: str) -> list[str]:
        """The selected stages of one story, in order; an error names the stage it came from.
        With no asset selected (checks executed alone from the UI) the stored values are
        checked instead."""
        if not self.selected:
            await _stage("checks", check_stored(self, sid))
            return []
        if STRUCTURED in self.selected:
            await _stage("structured_story", self.structured_story(sid))
        first = next(
            k for k in (VISUAL, STYLE, MOMENTS, IMAGES, BOOK, STRUCTURED) if k in self.selected
        )
        story = await _stage(first.to_user_string(), self._story(sid))
        fields = [f for f, key in STORY_FIELDS.items() if key in self.selected]
        results = await asyncio.gather(
            *(_stage(f, self.story_field(sid, story, f)) for f in fields), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if MOMENTS in self.selected:
            await _stage("scene_moments", self.scene_moments(sid, story))
        if IMAGES in self.selected:
            await _stage("scene_images", self.scene_images(sid, story))
        if BOOK in self.selected:
            await _stage("storybook", self.storybook(sid))
        return self.done.get(sid, [])

    async def structured_story(self, sid: str) -> None:
        requests = await asyncio.to_thread(reads.load_requests, self.engine, [sid])
        request = requests.get(sid)
        if request is None:
            # A partition added by hand in the UI has no request: generate from defaults.
            request = StoryRequest(story_id=sid)
            await asyncio.to_thread(repo.register_request, self.engine, sid, request, self.by)
        fingerprint = fp.structured_story(request)
        if self.stale_only:
            stored, _ = await self._stored_fingerprints(sid)
            if stored.get("structured_story") == fingerprint:
                return
        result = await self.llm.generate_structured_story(
            request, self._ctx(sid, "structured_story")
        )
        prov = result.provenance.model_copy(update={"input_fingerprint": fingerprint})
        await asyncio.to_thread(
            repo.save_structured_story,
            self.engine,
            sid,
            result.value,
            prov,
            self.by,
            overwrite_user_edits=self.overwrite,
        )
        story = await self._story(sid)
        scenes = await asyncio.to_thread(reads.load_scenes, self.engine, [sid])
        self._check(
            sid,
            STRUCTURED,
            "scene_count",
            scene_count_problems(
                story.story_meta.scene_count, [int(n) for n in scenes["scene_number"]]
            ),
        )
        self._check(sid, STRUCTURED, "required_fields", required_field_problems(story))
        meta = story.story_meta
        self._materialized(
            sid,
            STRUCTURED,
            {
                "title": dg.MetadataValue.text(meta.story_title),
                "child": dg.MetadataValue.text(
                    f"{story.child_profile.name} ({story.child_profile.age})"
                ),
                "value_to_teach": dg.MetadataValue.text(meta.value_to_teach),
                "scenes": dg.MetadataValue.int(meta.scene_count),
                "first_scene": dg.MetadataValue.text(story.scenes[0].text),
                **provenance_metadata([prov], self.by, fingerprint),
            },
        )

    async def story_field(self, sid: str, story, name: str) -> None:
        asset = STORY_FIELDS[name]
        if name in (await self._user_owned(sid))[0]:
            log.info("kept user edit, no call", extra={"story_id": sid, "asset": name})
            return
        fingerprint = fp.story_level(name, story)
        if self.stale_only:
            stored, _ = await self._stored_fingerprints(sid)
            if stored.get(name) == fingerprint:
                return
        result = await getattr(self.llm, f"generate_{name}")(story, self._ctx(sid, name))
        prov = result.provenance.model_copy(update={"input_fingerprint": fingerprint})
        value = result.value.model_dump(mode="json")
        await asyncio.to_thread(
            repo.save_story_field,
            self.engine,
            sid,
            name,
            value,
            prov,
            self.by,
            overwrite_user_edits=self.overwrite,
        )
        stored_value = await self._field(sid, name)
        self._check(
            sid, asset, "required_fields", required_field_problems(story, **{name: stored_value})
        )
        self._materialized(
            sid,
            asset,
            {
                "value": dg.MetadataValue.json(stored_value),
                **provenance_metadata([prov], self.by, fingerprint),
            },
        )

    async def scene_moments(self, sid: str, story) -> None:
        _, owned = await self._user_owned(sid)
        wanted = {
            s.scene_number: fp.scene_moment(story, s.scene_number)
            for s in story.scenes
            if "moment" not in owned.get(s.scene_number, ())
        }
        if not wanted:
            return
        if self.stale_only:
            _, stored = await self._stored_fingerprints(sid)
            wanted = {
                n: f for n, f in wanted.items() if stored.get(n, {}).get("scene_moments") != f
            }
            if not wanted:
                return
        numbers = sorted(wanted)
        results = await asyncio.gather(
            *(
                self.llm.generate_scene_moment(story, n, self._ctx(sid, "scene_moments", n))
                for n in numbers
            )
        )
        texts = {s.scene_number: s.text for s in story.scenes}
        provs = [
            r.provenance.model_copy(update={"input_fingerprint": wanted[n]})
            for n, r in zip(numbers, results, strict=True)
        ]
        frame = pd.DataFrame(
            [
                {
                    "story_id": sid,
                    "scene_number": n,
                    "text": texts[n],
                    "moment": r.value.moment,
                    "provenance": p.model_dump(),
                }
                for n, r, p in zip(numbers, results, provs, strict=True)
            ]
        )
        await asyncio.to_thread(
            repo.upsert_scene_columns,
            self.engine,
            frame,
            ["moment"],
            "scene_moments",
            self.by,
            overwrite_user_edits=self.overwrite,
        )
        self._materialized(
            sid,
            MOMENTS,
            {
                "scenes": dg.MetadataValue.int(len(frame)),
                "preview": dg.MetadataValue.md(
                    frame[["scene_number", "moment"]].to_markdown(index=False)
                ),
                **provenance_metadata(provs, self.by, {str(n): wanted[n] for n in numbers}),
            },
        )

    async def scene_images(self, sid: str, story) -> None:
        profile, style = await asyncio.gather(
            self._field(sid, "visual_profile"), self._field(sid, "base_style")
        )
        scenes = await asyncio.to_thread(reads.load_scenes, self.engine, [sid])
        rows = scenes.to_dict("records")
        if not rows or any(not r["moment"] for r in rows):
            raise LookupError(f"story {sid} is missing upstream values: moments")
        visual, base = VisualProfile.model_validate(profile), BaseStyle.model_validate(style)
        prompts = {
            r["scene_number"]: compose_image_prompt(
                base_style=base,
                setting=story.story_meta.setting_description,
                child_name=story.child_profile.name,
                visual_profile=visual,
                moment=r["moment"],
                side_character=story.side_character,
                budget=self.budget,
            )
            for r in rows
        }
        self._check(sid, IMAGES, "prompt_budget", prompt_budget_problems(prompts, self.budget))
        wanted = {
            r["scene_number"]: fp.scene_image(story, profile, style, r["moment"]) for r in rows
        }
        if self.stale_only:
            _, stored = await self._stored_fingerprints(sid)
            wanted = {n: f for n, f in wanted.items() if stored.get(n, {}).get("scene_images") != f}
            if not wanted:
                return
        texts = {r["scene_number"]: r["text"] for r in rows}
        outcomes = await asyncio.gather(
            *(self._image(sid, n, texts[n], prompts[n], wanted[n]) for n in sorted(wanted))
        )
        good = [o for o in outcomes if isinstance(o, dict)]
        problems = [o for o in outcomes if isinstance(o, str)]
        frame = pd.DataFrame(good)
        if good:
            await asyncio.to_thread(
                repo.upsert_scene_columns,
                self.engine,
                frame,
                ["image_prompt", "image_uri", "image_sha256"],
                "scene_images",
                self.by,
                overwrite_user_edits=self.overwrite,
            )
        self._check(sid, IMAGES, "images_valid", problems)
        if not good:
            return
        thumb = base64.b64encode(frame["thumbnail"].iloc[0]).decode()
        provs = [Provenance.model_validate(p) for p in frame["provenance"]]
        self._materialized(
            sid,
            IMAGES,
            {
                "images": dg.MetadataValue.int(len(frame)),
                "size": dg.MetadataValue.text(f"{self.width}x{self.height}"),
                "max_prompt_chars": dg.MetadataValue.int(
                    int(frame["image_prompt"].str.len().max())
                ),
                "first_image_uri": dg.MetadataValue.path(frame["image_uri"].iloc[0]),
                "preview": dg.MetadataValue.md(
                    f"![{sid} scene {frame['scene_number'].iloc[0]}]"
                    f"(data:image/jpeg;base64,{thumb})"
                ),
                **provenance_metadata(provs, self.by, {str(n): f for n, f in wanted.items()}),
            },
        )

    async def _content_safety(self, sid: str, texts: dict[str, str | None]) -> None:
        """The word list, then the moderation endpoint when one is configured."""
        found = unsafe_terms(texts, self.blocklist)
        if (
            self.moderation is not None
            and check_key(BOOK, "content_safety") in self.selected_checks
        ):
            found += await self.moderation.flagged(texts)
        self._check(sid, BOOK, "content_safety", found, hold=True)

    async def _image(self, sid: str, number: int, text: str, prompt: str, fingerprint: str):
        """The stored scene row, or the problem with the picture (as a string)."""
        seed = int(content_hash([sid, number])[:8], 16)
        try:
            image = await self.images.generate_image(
                prompt,
                self._ctx(sid, "scene_images", number),
                width=self.width,
                height=self.height,
                seed=seed,
            )
        except ImageRejected as exc:  # the provider checked it already (and did not cache it)
            return f"scene {number}: {exc}"
        try:
            await asyncio.to_thread(inspect_png, image.png, width=self.width, height=self.height)
        except ImageCheckError as exc:
            return f"scene {number}: {exc}"
        key = self.store.key_for("images", sid, image.png, ".png")
        uri = await asyncio.to_thread(self.store.put, key, image.png)
        thumb = (
            await asyncio.to_thread(thumbnail_jpeg, image.png, (160, 120)) if number == 1 else b""
        )
        prov = image.provenance.model_copy(update={"input_fingerprint": fingerprint})
        # The PNG bytes go out of scope here: a batch never holds all its images in memory.
        return {
            "story_id": sid,
            "scene_number": number,
            "text": text,
            "image_prompt": prompt,
            "image_uri": uri,
            "image_sha256": key.rsplit("/", 1)[1].removesuffix(".png"),
            "provenance": prov.model_dump(),
            "thumbnail": thumb,
        }

    async def storybook(self, sid: str) -> None:
        story = await self._story(sid)
        scenes = await asyncio.to_thread(reads.load_scenes, self.engine, [sid])
        rows = scenes.to_dict("records")
        if not rows or any(not r["image_uri"] for r in rows):
            raise LookupError(f"story {sid} has no complete scene images yet")
        texts = story_texts(
            story,
            {r["scene_number"]: r["moment"] for r in rows},
            {r["scene_number"]: r["image_prompt"] for r in rows},
        )
        await self._content_safety(sid, texts)
        pages = [
            Page(
                scene_number=r["scene_number"],
                text=r["text"],
                # Books live at books/<id>/<sha>.html, images at images/<id>/<sha>.png.
                image_src=f"../../images/{sid}/{r['image_sha256']}.png",
                alt=r["moment"] or "",
            )
            for r in rows
        ]
        fingerprint = fp.storybook(
            story.story_meta.story_title,
            [(r["scene_number"], r["text"], r["image_sha256"]) for r in rows],
        )
        if self.stale_only:
            stored, _ = await self._stored_fingerprints(sid)
            if stored.get("storybook") == fingerprint:
                return
        started = time.perf_counter()
        html = render_book(sid, story, pages, self.width, self.height).encode()
        uri = await asyncio.to_thread(
            self.store.put, self.store.key_for("books", sid, html, ".html"), html
        )
        await asyncio.to_thread(
            repo.set_book, self.engine, sid, uri, self.by, input_fingerprint=fingerprint
        )
        prov = Provenance(
            provider="storygen",
            model="book.html.j2",
            prompt_name="storybook",
            prompt_version="v1",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            input_fingerprint=fingerprint,
        )
        self._materialized(
            sid,
            BOOK,
            {
                "book_uri": dg.MetadataValue.path(uri),
                "title": dg.MetadataValue.text(story.story_meta.story_title),
                "pages": dg.MetadataValue.int(len(pages)),
                **provenance_metadata([prov], self.by, fingerprint),
            },
        )
