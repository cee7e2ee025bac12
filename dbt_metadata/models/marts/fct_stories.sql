-- One row per story: what it is, how it went, what it cost (from the call ledger).
with calls as (
    select
        story_id,
        sum(prompt_tokens + completion_tokens) as total_tokens,
        sum(cost_usd) as total_cost_usd,
        sum(latency_ms) as total_latency_ms,
        count(*) as provider_calls
    from {{ ref('stg_provider_calls') }}
    group by story_id
),
requests as (
    select story_id, min(created_at) as requested_at
    from {{ ref('stg_story_requests') }}
    group by story_id
),
edits as (
    select story_id, count(*) as user_edits
    from {{ ref('stg_audit_log') }}
    where source = 'user'
    group by story_id
),
provenance as (
    select story_id, provenance from {{ ref('stg_stories') }}
    union all
    select story_id, provenance from {{ ref('stg_scenes') }}
),
versions as (
    select
        pr.story_id,
        string_agg(distinct p.value ->> 'prompt_name' || ':' || (p.value ->> 'prompt_version'), ', ')
            filter (where p.value ->> 'prompt_version' is not null) as prompt_versions,
        string_agg(distinct p.value ->> 'model', ', ') as models
    from provenance pr
    cross join lateral jsonb_each(pr.provenance) p
    group by pr.story_id
)
select
    s.story_id,
    s.title,
    s.child_age,
    s.value_to_teach,
    s.tone,
    s.setting,
    s.scene_count,
    s.status,
    coalesce(c.total_tokens, 0) as total_tokens,
    coalesce(c.total_cost_usd, 0) as total_cost_usd,
    coalesce(c.total_latency_ms, 0) as total_latency_ms,
    coalesce(c.provider_calls, 0) as provider_calls,
    coalesce(r.requested_at, s.created_at) as requested_at,
    case when s.status = 'succeeded' then s.updated_at end as book_at,
    case when s.status = 'succeeded'
        then extract(epoch from s.updated_at - coalesce(r.requested_at, s.created_at))
    end as seconds_to_book,
    coalesce(e.user_edits, 0) as user_edits,
    v.prompt_versions,
    v.models,
    s.book_uri
from {{ ref('stg_stories') }} s
left join calls c using (story_id)
left join requests r using (story_id)
left join edits e using (story_id)
left join versions v using (story_id)
