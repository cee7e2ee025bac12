"""The LLM half of a story: structured story, visual profile, base style, scene moments."""

import asyncio

import dagster as dg
import pandas as pd

from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.defs.resources import StoryDatabase, StoryLLMResource
from storygen_dagster.defs.runner import fresh_run, run_per_story, story_ids
from storygen_dagster.domain.models import Provenance, StoryRequest, StructuredStory
from storygen_dagster.domain.prompts import PROMPT_VERSIONS
from storygen_dagster.providers.base import CallContext, Generated
from storygen_dagster.storage import repository as repo

COMMON = dict(
    partitions_def=story_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="story",
    kinds={"python", "postgres"},
    # Steps that call a provider share a pool, so dagster.yaml can cap them per provider.
    pool="llm",
)


def provenance_metadata(provs: list[Provenance]) -> dict[str, dg.MetadataValue]:
    """The facts every materialization carries (summed over the run's stories and calls)."""
    first = provs[0]
    return {
        "provider": dg.MetadataValue.text(first.provider),
        "model": dg.MetadataValue.text(first.model),
        "prompt_name": dg.MetadataValue.text(first.prompt_name or ""),
        "prompt_version": dg.MetadataValue.text(first.prompt_version or ""),
        "prompt_sha256": dg.MetadataValue.text(first.prompt_sha256 or ""),
        "calls": dg.MetadataValue.int(len(provs)),
        "latency_ms_total": dg.MetadataValue.float(round(sum(p.latency_ms for p in provs), 2)),
        "prompt_tokens": dg.MetadataValue.int(sum(p.prompt_tokens for p in provs)),
        "completion_tokens": dg.MetadataValue.int(sum(p.completion_tokens for p in provs)),
        "cost_usd": dg.MetadataValue.float(round(sum(p.cost_usd for p in provs), 6)),
        "attempts": dg.MetadataValue.int(sum(p.attempts for p in provs)),
        "cached_calls": dg.MetadataValue.int(sum(p.cached for p in provs)),
    }


def _by(context: dg.AssetExecutionContext) -> str:
    return f"run:{context.run.run_id}"


def _failure_recorder(context: dg.AssetExecutionContext, db: StoryDatabase):
    engine = db.engine()
    return lambda sid, error: repo.mark_failed(engine, sid, error, _by(context))


@dg.asset(code_version=f"structured_story-{PROMPT_VERSIONS['structured_story']}", **COMMON)
def structured_story(
    context: dg.AssetExecutionContext, db: StoryDatabase, llm: StoryLLMResource
) -> dg.MaterializeResult:
    """Child profile, side character, story meta and 3-5 scenes of text, from the request."""
    ids = story_ids(context)
    engine = db.engine()
    requests = repo.load_requests(engine, ids)
    for sid in set(ids) - set(requests):
        # A partition added by hand in the UI has no request: generate from defaults.
        requests[sid] = StoryRequest(story_id=sid)
        repo.register_request(engine, sid, requests[sid], _by(context))
    client = llm.client(engine)
    fresh = fresh_run(context)
    limit = asyncio.Semaphore(llm.concurrency())

    async def work(sid: str) -> Generated[StructuredStory]:
        async with limit:
            result = await client.generate_structured_story(
                requests[sid], CallContext(story_id=sid, asset="structured_story", fresh=fresh)
            )
        wanted = requests[sid].scene_count
        if wanted and result.value.story_meta.scene_count != wanted:
            raise ValueError(
                f"scene_count: requested {wanted}, the model wrote "
                f"{result.value.story_meta.scene_count}"
            )
        await asyncio.to_thread(
            repo.save_structured_story, engine, sid, result.value, result.provenance, _by(context)
        )
        return result

    done = run_per_story(context, ids, work, _failure_recorder(context, db))
    preview = pd.DataFrame(
        [
            {
                "story_id": sid,
                "title": g.value.story_meta.story_title,
                "child": f"{g.value.child_profile.name} ({g.value.child_profile.age})",
                "value": g.value.story_meta.value_to_teach,
                "scenes": g.value.story_meta.scene_count,
            }
            for sid, g in done.items()
        ]
    )
    first = next(iter(done.values())).value
    return dg.MaterializeResult(
        metadata={
            "stories": dg.MetadataValue.int(len(done)),
            "scenes": dg.MetadataValue.int(int(preview["scenes"].sum())),
            "preview": dg.MetadataValue.md(preview.head(20).to_markdown(index=False)),
            "first_scene": dg.MetadataValue.text(first.scenes[0].text),
            **provenance_metadata([g.provenance for g in done.values()]),
        }
    )


def _story_level(field: str):
    method = f"generate_{field}"

    @dg.asset(
        name=field,
        deps=[structured_story],
        code_version=f"{field}-{PROMPT_VERSIONS[field]}",
        description={
            "visual_profile": "Character and side-character prompts, the same in every scene.",
            "base_style": "One art style, lighting, atmosphere, palette and composition per book.",
        }[field],
        **COMMON,
    )
    def _asset(
        context: dg.AssetExecutionContext, db: StoryDatabase, llm: StoryLLMResource
    ) -> dg.MaterializeResult:
        ids = story_ids(context)
        engine = db.engine()
        stories = repo.load_stories(engine, ids)
        client = llm.client(engine)
        fresh = fresh_run(context)
        limit = asyncio.Semaphore(llm.concurrency())

        async def work(sid: str) -> Generated:
            if sid not in stories:
                raise LookupError(f"story {sid} has no structured_story yet")
            async with limit:
                result = await getattr(client, method)(
                    stories[sid], CallContext(story_id=sid, asset=field, fresh=fresh)
                )
            await asyncio.to_thread(
                repo.save_story_field,
                engine,
                sid,
                field,
                result.value.model_dump(mode="json"),
                result.provenance,
                _by(context),
            )
            return result

        done = run_per_story(context, ids, work, _failure_recorder(context, db))
        sample = next(iter(done.values())).value
        return dg.MaterializeResult(
            metadata={
                "stories": dg.MetadataValue.int(len(done)),
                "preview": dg.MetadataValue.json(sample.model_dump(mode="json")),
                **provenance_metadata([g.provenance for g in done.values()]),
            }
        )

    return _asset


visual_profile = _story_level("visual_profile")
base_style = _story_level("base_style")


@dg.asset(
    deps=[structured_story],
    code_version=f"scene_moment-{PROMPT_VERSIONS['scene_moment']}",
    **COMMON,
)
def scene_moments(
    context: dg.AssetExecutionContext, db: StoryDatabase, llm: StoryLLMResource
) -> dg.MaterializeResult:
    """Per scene, the single visual moment to draw, chosen from the story so far."""
    ids = story_ids(context)
    engine = db.engine()
    stories = repo.load_stories(engine, ids)
    client = llm.client(engine)
    fresh = fresh_run(context)
    limit = asyncio.Semaphore(llm.concurrency())

    async def one(sid: str, story: StructuredStory, number: int) -> Generated:
        async with limit:
            return await client.generate_scene_moment(
                story,
                number,
                CallContext(story_id=sid, asset="scene_moments", scene_number=number, fresh=fresh),
            )

    async def work(sid: str) -> pd.DataFrame:
        if sid not in stories:
            raise LookupError(f"story {sid} has no structured_story yet")
        story = stories[sid]
        # Scenes are independent calls (each sees the story so far): all in flight together.
        results = await asyncio.gather(*(one(sid, story, s.scene_number) for s in story.scenes))
        frame = pd.DataFrame(
            [
                {
                    "story_id": sid,
                    "scene_number": s.scene_number,
                    "text": s.text,
                    "moment": r.value.moment,
                    "provenance": r.provenance.model_dump(),
                }
                for s, r in zip(story.scenes, results, strict=True)
            ]
        )
        await asyncio.to_thread(
            repo.upsert_scene_columns, engine, frame, ["moment"], "scene_moments", _by(context)
        )
        return frame

    done = run_per_story(context, ids, work, _failure_recorder(context, db))
    frame = pd.concat(done.values(), ignore_index=True)
    provs = [Provenance.model_validate(p) for p in frame["provenance"]]
    return dg.MaterializeResult(
        metadata={
            "stories": dg.MetadataValue.int(len(done)),
            "rows": dg.MetadataValue.int(len(frame)),
            "preview": dg.MetadataValue.md(
                frame[["story_id", "scene_number", "moment"]].head(20).to_markdown(index=False)
            ),
            **provenance_metadata(provs),
        }
    )
