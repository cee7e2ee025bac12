"""Story ids: the one place that decides what may become a partition key, object key or path."""

import hashlib
import json
import re

STORY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_STORY_ID_RE = re.compile(STORY_ID_PATTERN)


class InvalidStoryId(ValueError):
    pass


def validate_story_id(value: str) -> str:
    """Return value unchanged if it is a safe story id; raise InvalidStoryId naming it otherwise."""
    if not isinstance(value, str) or not _STORY_ID_RE.fullmatch(value):
        raise InvalidStoryId(
            f"story_id {value!r} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: object) -> str:
    """sha256 of the canonical JSON of value (bytes and str are hashed as they are)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = canonical_json(value).encode()
    return hashlib.sha256(data).hexdigest()


def slugify(text: str, max_len: int = 24) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].strip("-") or "story"


def story_id_for(payload: dict) -> str:
    """A deterministic id for a request that did not bring one: name slug + content hash."""
    name = payload.get("child_name") or "story"
    return f"{slugify(str(name), 20)}-{content_hash(payload)[:10]}"
