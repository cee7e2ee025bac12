{{ config(meta={"dagster": {"ref": {"name": "stg_stories"}}}) }}
-- A succeeded story must have exactly scene_count scenes, each with an image.
select s.story_id, s.scene_count, count(sc.image_uri) as images
from {{ ref('stg_stories') }} s
left join {{ ref('stg_scenes') }} sc using (story_id)
where s.status = 'succeeded'
group by s.story_id, s.scene_count
having count(sc.image_uri) <> s.scene_count or count(*) <> s.scene_count
