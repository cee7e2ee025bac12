-- One row per scene with the provenance of its text, moment and image. `source` is the last
-- writer of the row; text_source / moment_source say who owns each field (a user edit is
-- kept on AI re-runs).
select
    sc.scene_key,
    sc.story_id,
    sc.scene_number,
    sc.text,
    sc.moment,
    sc.image_uri,
    sc.image_sha256,
    length(sc.image_prompt) as image_prompt_chars,
    sc.source,
    coalesce(sc.field_sources ->> 'text', 'ai') as text_source,
    coalesce(sc.field_sources ->> 'moment', 'ai') as moment_source,
    sc.updated_by,
    sc.provenance -> 'structured_story' ->> 'model' as text_model,
    sc.provenance -> 'scene_moments' ->> 'model' as moment_model,
    sc.provenance -> 'scene_moments' ->> 'prompt_version' as moment_prompt_version,
    sc.provenance -> 'scene_images' ->> 'model' as image_model,
    (sc.provenance -> 'scene_images' ->> 'latency_ms')::float as image_latency_ms,
    coalesce((sc.provenance -> 'scene_images' ->> 'cost_usd')::numeric, 0) as image_cost_usd,
    sc.created_at,
    sc.updated_at
from {{ ref('stg_scenes') }} sc
