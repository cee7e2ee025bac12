select
    id as request_id,
    story_id,
    status,
    error,
    attempts,
    run_id,
    requested_by,
    priority,
    created_at,
    updated_at
from {{ source('storygen', 'story_requests') }}
