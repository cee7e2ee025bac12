select
    id as audit_id,
    story_id,
    scene_number,
    asset,
    field,
    old_value_sha256,
    new_value_sha256,
    source,
    updated_by,
    run_id,
    at
from {{ source('storygen', 'audit_log') }}
