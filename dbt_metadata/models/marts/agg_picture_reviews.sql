-- Per story and reviewer model: pictures reviewed, redraws, pictures still flagged or unsafe,
-- and what the review cost (the ledger's calls of the illustrations_reviewed check; cached
-- answers cost nothing and are not in the ledger).
with latest as (
    -- Each scene's last round in the latest run that reviewed it.
    select distinct on (story_id, scene_number) *
    from {{ ref('stg_picture_reviews') }}
    order by story_id, scene_number, review_id desc
),
per_story as (
    select
        story_id,
        reviewer,
        model,
        count(*) as pictures,
        sum(round) as redraws,
        count(*) filter (where not passed) as flagged,
        count(*) filter (where safety_failed) as unsafe
    from latest
    group by story_id, reviewer, model
),
cost as (
    select
        story_id,
        model,
        count(*) as review_calls,
        sum(prompt_tokens + completion_tokens) as review_tokens,
        sum(cost_usd) as review_cost_usd
    from {{ ref('stg_provider_calls') }}
    where asset = 'illustrations_reviewed'
    group by story_id, model
)
select
    p.story_id,
    p.reviewer,
    p.model,
    p.pictures,
    p.redraws,
    p.flagged,
    p.unsafe,
    coalesce(c.review_calls, 0) as review_calls,
    coalesce(c.review_tokens, 0) as review_tokens,
    coalesce(c.review_cost_usd, 0) as review_cost_usd
from per_story p
left join cost c on c.story_id = p.story_id and c.model = p.model
