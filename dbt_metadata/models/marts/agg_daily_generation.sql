-- Per day of request: volume, outcomes, cost, and time to book (p50/p95).
with story_days as (
    select
        date_trunc('day', requested_at)::date as day,
        status,
        total_cost_usd,
        seconds_to_book
    from {{ ref('fct_stories') }}
),
rejected as (
    select date_trunc('day', created_at)::date as day, count(*) as rejected
    from {{ ref('stg_story_requests') }}
    where status = 'rejected'
    group by 1
),
daily as (
    select
        day,
        count(*) as stories_requested,
        count(*) filter (where status = 'succeeded') as succeeded,
        count(*) filter (where status = 'failed') as failed,
        sum(total_cost_usd) as cost_usd,
        percentile_cont(0.5) within group (order by seconds_to_book) as p50_seconds_to_book,
        percentile_cont(0.95) within group (order by seconds_to_book) as p95_seconds_to_book
    from story_days
    group by day
)
select
    coalesce(d.day, r.day) as day,
    coalesce(d.stories_requested, 0) + coalesce(r.rejected, 0) as stories_requested,
    coalesce(d.succeeded, 0) as succeeded,
    coalesce(d.failed, 0) as failed,
    coalesce(r.rejected, 0) as rejected,
    coalesce(d.cost_usd, 0) as cost_usd,
    d.p50_seconds_to_book,
    d.p95_seconds_to_book
from daily d
full outer join rejected r on r.day = d.day
