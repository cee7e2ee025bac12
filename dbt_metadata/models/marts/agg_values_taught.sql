-- Per value to teach and child age: how many stories, how they went, what they cost.
select
    value_to_teach,
    child_age,
    count(*) as stories,
    count(*) filter (where status = 'succeeded') as succeeded,
    avg(total_cost_usd) as avg_cost_usd,
    avg(scene_count) as avg_scene_count
from {{ ref('fct_stories') }}
where value_to_teach is not null
group by value_to_teach, child_age
