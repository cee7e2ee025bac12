"""multipart/form-data as an OpenAI-compatible images/edits endpoint reads it: text fields and
files, parsed from the raw body (RFC 7578; binary-safe: parts are split on the boundary, never
decoded as text)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def parse_form(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    """(text fields, files) of a multipart/form-data body; ValueError when it is not one."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or not found:
        raise ValueError(f"not multipart/form-data: {content_type!r}")
    delimiter = b"--" + found.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in raw.split(delimiter)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, _, body = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        body = body.removesuffix(b"\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.decode().split("\r\n"))
        )
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        if name is None:
            raise ValueError(f"a part without a name: {disposition!r}")
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if filename is None:
            fields[name.group(1)] = body.decode()
        else:
            ctype = headers.get("content-type", "application/octet-stream")
            files[name.group(1)] = Upload(filename.group(1), ctype, body)
    return fields, files
