-- One row per review of a scene picture (round 0: the first picture, 1..: its redraws).
select
    id as review_id,
    story_id,
    scene_number,
    round,
    image_sha256,
    passed,
    safety_failed,
    verdicts,
    suggested_fix,
    reviewer,
    model,
    prompt_version,
    prompt_tokens,
    completion_tokens,
    cost_usd::numeric as cost_usd,
    cached,
    updated_by,
    at as reviewed_at
from {{ source('storygen', 'picture_reviews') }}
