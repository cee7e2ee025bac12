select
    id as call_id,
    provider,
    model,
    endpoint,
    story_id,
    asset,
    scene_number,
    status,
    http_status,
    attempts,
    latency_ms,
    coalesce(prompt_tokens, 0) as prompt_tokens,
    coalesce(completion_tokens, 0) as completion_tokens,
    coalesce(cost_usd, 0)::numeric as cost_usd,
    created_at
from {{ source('storygen', 'provider_calls') }}
