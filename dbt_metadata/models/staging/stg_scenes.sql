select
    story_id || '#' || scene_number as scene_key,
    story_id,
    scene_number,
    text,
    moment,
    image_prompt,
    image_uri,
    image_sha256,
    provenance,
    field_sources,
    input_fingerprints,
    source,
    model,
    prompt_version,
    updated_by,
    created_at,
    updated_at
from {{ source('storygen', 'scenes') }}
