"""The fake's vision reviewer: a chat request whose user message carries image content parts
is a picture review (providers/vision_chat.py). It passes every criterion unless a verdict is
scripted for the scene (`FakeProvider.reject(scene, ...)`, one per review call of that scene,
in order)."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from storygen_dagster.domain.picture_review import CRITERIA


def prompt_text(body: dict) -> str:
    """The user message's text (its text parts, when it has content parts)."""
    content = body["messages"][1]["content"]
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content


def pictures(body: dict) -> list[str]:
    """The image URLs of the user message (data URIs as sent)."""
    content = body["messages"][1]["content"]
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]


def review_value(prompt: str, script: dict[int, deque[dict]]) -> dict[str, Any]:
    """The reply for the scene the prompt names: all pass, or the next scripted verdict
    ({"fail": {criterion: reason}, "fix": "..."})."""
    scene = int(re.search(r"Scene number: (\d+)", prompt).group(1))
    queued = script.get(scene)
    verdict = queued.popleft() if queued else {}
    fail = verdict.get("fail", {})
    return {
        "scene_number": scene,
        **{
            c: {"passed": c not in fail, "reason": fail.get(c, f"{c.replace('_', ' ')}: right")}
            for c in CRITERIA
        },
        "suggested_fix": verdict.get("fix", ""),
    }
