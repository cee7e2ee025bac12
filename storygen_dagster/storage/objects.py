"""Object storage for images and books: a local folder or any fsspec URL (s3://bucket/prefix),
through universal-pathlib. Keys are content-addressed; writes are atomic (temp file + rename
locally, a single PUT on object stores)."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

from upath import UPath

from storygen_dagster.domain.ids import validate_story_id


class ObjectStore:
    def __init__(self, base_url: str, storage_options: dict[str, Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.root = UPath(self.base_url, **(storage_options or {}))
        self.is_local = self.root.protocol in ("", "file", "local")

    def key_for(self, kind: str, story_id: str, data: bytes, suffix: str) -> str:
        validate_story_id(story_id)
        if kind not in ("images", "books"):
            raise ValueError(f"unknown object kind {kind!r}")
        return f"{kind}/{story_id}/{hashlib.sha256(data).hexdigest()}{suffix}"

    def uri(self, key: str) -> str:
        return str(self.root / key) if not self.is_local else os.fspath(self.root / key)

    def put(self, key: str, data: bytes) -> str:
        """Write once: same key = same content, so an existing object is left as it is."""
        path = self.root / key
        if path.exists():
            return self.uri(key)
        if self.is_local:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        else:
            path.fs.pipe_file(path.path, data)  # one PUT: readers never see half an object
        return self.uri(key)

    def get(self, key_or_uri: str) -> bytes:
        return self.path(key_or_uri).read_bytes()

    def exists(self, key_or_uri: str) -> bool:
        return self.path(key_or_uri).exists()

    def path(self, key_or_uri: str) -> UPath:
        prefix = self.uri("")
        if key_or_uri.startswith(prefix):
            key_or_uri = key_or_uri[len(prefix) :].lstrip("/")
        if "://" in key_or_uri or key_or_uri.startswith("/"):
            raise ValueError(f"{key_or_uri!r} is not inside the object store {self.base_url}")
        if ".." in key_or_uri.split("/"):
            raise ValueError(f"object key {key_or_uri!r} may not contain '..'")
        return self.root / key_or_uri
