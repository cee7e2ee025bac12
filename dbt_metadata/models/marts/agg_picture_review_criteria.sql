-- Per reviewer model and criterion: how many pictures were judged and how many passed (the
-- first picture and every redraw each count once).
select
    r.reviewer,
    r.model,
    v.key as criterion,
    count(*) as judged,
    count(*) filter (where (v.value ->> 'passed')::boolean) as passed,
    round(
        count(*) filter (where (v.value ->> 'passed')::boolean)::numeric / count(*), 4
    ) as pass_rate
from {{ ref('stg_picture_reviews') }} r
cross join lateral jsonb_each(r.verdicts) v
group by r.reviewer, r.model, v.key
