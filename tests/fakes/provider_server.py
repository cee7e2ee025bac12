"""A fake OpenAI-compatible chat + Together-compatible images server on loopback: real HTTP on
a free port in a thread, answering valid replies unless a scripted fault is queued for the
next request of that kind. Every request is recorded (time, path, body, auth) for asserts.
OpenAI's images/edits is an "images" request too (the same faults, rate limit and replies): its
multipart/form-data body is recorded as its text fields, with `image` as the uploaded file's
name, type, size and sha256 (the bytes are kept in `FakeProvider.uploads` by sha256); an edit
without an `image` file is refused with a 400, as OpenAI does.

Faults (a dict queued with `FakeProvider.queue(kind, ...)`, one per request): `status` (+ `body`,
`headers`, e.g. a 429 with Retry-After), `sleep` (a slow reply: seconds before answering),
`drop` (the connection dies before a full reply: "close" or True, "reset", "partial"), and the
chat and image keys read by `_chat` / `_image`. The server behaves like a real one: HTTP/1.1
keep-alive, idle connections closed after a few seconds, a listen backlog of hundreds."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.providers import offline
from storygen_dagster.providers.offline_painter import paint, paint_scene
from tests.fakes.multipart import parse_form
from tests.fakes.schema_model import add_quirks, conform, reply_from_schema
from tests.fakes.vision import prompt_text, review_value


@dataclass
class Seen:
    kind: str
    path: str
    at: float
    body: Any
    auth: str | None


def canned_value(schema_name: str, prompt: str) -> dict:
    """A valid answer for the schema, driven by the prompt like a real model would be."""
    scene_count = re.search(r"use exactly (\d)", prompt)
    name = re.search(r"Child's name: (.+)", prompt)
    request = StoryRequest(
        scene_count=int(scene_count.group(1)) if scene_count else None,
        child_name=name.group(1).strip() if name else None,
    )
    # A revision prompt carries a reviewer's note: another story, as a model would write.
    note = re.search(r"Reviewer's note: (.+)", prompt)
    story = offline.story_for(request, note.group(1).strip() if note else None)
    if schema_name == "StructuredStory":
        return story.model_dump(mode="json")
    if schema_name == "VisualProfile":
        return offline.visual_profile_for(story).model_dump(mode="json")
    if schema_name == "BaseStyle":
        return offline.base_style_for(story).model_dump(mode="json")
    if schema_name == "SceneMoment":
        number = int(re.search(r"for scene\s+(\d+)", prompt).group(1))
        return {"scene_number": number, "moment": f"the child smiles in scene {number}"}
    raise ValueError(schema_name)


def solid_png(width: int, height: int, color=(0, 0, 0), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=fmt)
    return out.getvalue()


def _reference(body: dict) -> bytes | None:
    refs = body.get("reference_images") or ([body["image_url"]] if body.get("image_url") else [])
    if not refs:
        return None
    return base64.b64decode(refs[0].split("base64,", 1)[1])


class LoopbackServer(ThreadingHTTPServer):
    """socketserver listens with a backlog of 5 (`request_queue_size`). 16 calls connecting at
    once (the bench's baseline wave) outran the accept loop of this one-thread-accepts server:
    Linux then dropped SYNs (retried by the client after 1 s), answered with SYN cookies and
    reset connections whose cookie no longer validated, after the client had sent its request:
    httpx.ReadError for a request the handler never saw (DEVELOPERS.md, pitfalls). Real servers
    listen with hundreds (nginx 511, uvicorn and gunicorn 2048); the kernel caps it at
    net.core.somaxconn."""

    request_queue_size = 1024
    daemon_threads = True
    # Keep-alive handler threads wait for a client's next request: closing the server must
    # not wait for them (they end at the idle timeout or when the client closes).
    block_on_close = False


class FakeProvider:
    # How the chat model answers (a fault may override either for one request): only from the
    # JSON schema, ignoring the prompt; and which quirks of schema_model.QUIRKS it adds.
    schema_only = False
    quirks: frozenset[str] = frozenset()

    def __init__(self, api_key: str = "sk-test-key", port: int = 0):
        self.api_key = api_key
        self.script: dict[str, deque[dict]] = {
            "chat": deque(),
            "images": deque(),
            "files": deque(),
            "moderations": deque(),
        }
        # Words the fake moderation endpoint flags (as category "violence").
        self.flag_words: set[str] = set()
        self.seen: list[Seen] = []
        # The vision reviewer's scripted verdicts per scene (tests/fakes/vision.py).
        self.review_script: dict[int, deque[dict]] = {}
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}  # images/edits input images, by sha256
        self.delay_s = 0.0  # every request, for concurrency tests
        # Paint one picture per size and serve it for every prompt (the benchmark: the
        # provider's rendering time is modelled by delay_s, not by our CPU).
        self.reuse_images = False
        self._painted: dict[tuple[int, int], bytes] = {}
        # Like a provider account's limit: at most rate_limit[0] requests of a kind (chat,
        # images, moderations) in any rate_limit[1] seconds; above it a 429 with Retry-After
        # (seconds, rounded up, and OpenAI's retry-after-ms) until the oldest leaves the window.
        self.rate_limit: tuple[int, float] | None = None
        # Like an account's tokens-per-minute limit: chat requests count their messages (~4
        # characters a token) plus max_tokens; above token_limit[0] in token_limit[1] s, 429.
        self.token_limit: tuple[int, float] | None = None
        self.tokens_admitted: deque[tuple[float, int]] = deque()
        self.admitted: dict[str, deque[float]] = {}
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = LoopbackServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def __enter__(self) -> FakeProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def queue(self, kind: str, *faults: dict) -> None:
        self.script[kind].extend(faults)

    def reject(self, scene: int, *verdicts: dict) -> None:
        """The next reviews of `scene` fail: each {"fail": {criterion: reason}, "fix": str}."""
        self.review_script.setdefault(scene, deque()).extend(verdicts)

    def reviews(self) -> list[Seen]:
        """The picture reviews seen (chat requests with image content parts)."""
        return [
            s
            for s in self.seen
            if s.kind == "chat" and isinstance(s.body["messages"][1]["content"], list)
        ]

    def edits(self) -> list[Seen]:
        """The images/edits requests seen."""
        return [s for s in self.seen if s.path.endswith("/images/edits")]

    def count(self, kind: str | None = None) -> int:
        return sum(1 for s in self.seen if kind is None or s.kind == kind)

    def _over_limit(self, kind: str, now: float) -> dict | None:
        """A 429 fault if this request is over the rate limit, else None (it is counted)."""
        if self.rate_limit is None or kind == "files":
            return None
        limit, window = self.rate_limit
        times = self.admitted.setdefault(kind, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return None
        self.rejected += 1
        wait = times[0] + window - now
        headers = {"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(int(wait * 1000))}
        body = {"error": {"message": f"rate limit: {limit} per {window:g} s", "type": "rate"}}
        return {"status": 429, "headers": headers, "body": body}

    def _over_tokens(self, kind: str, body: dict | None, now: float) -> dict | None:
        if self.token_limit is None or kind != "chat" or not body:
            return None
        limit, window = self.token_limit
        used = self.tokens_admitted
        while used and used[0][0] <= now - window:
            used.popleft()
        tokens = len(json.dumps(body.get("messages"))) // 4 + int(body.get("max_tokens") or 0)
        if sum(n for _, n in used) + tokens <= limit:
            used.append((now, tokens))
            return None
        self.rejected += 1
        wait = used[0][0] + window - now if used else window
        headers = {"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(int(wait * 1000))}
        body = {"error": {"message": f"tokens: {limit} per {window:g} s", "type": "tokens"}}
        return {"status": 429, "headers": headers, "body": body}

    def times(self, kind: str) -> list[float]:
        return [s.at for s in self.seen if s.kind == kind]

    # -- request handling -------------------------------------------------------------------
    def _respond(self, kind: str, body: Any, fault: dict) -> tuple[int, dict, bytes]:
        if "status" in fault:
            payload = fault.get("body", {"error": {"message": f"scripted {fault['status']}"}})
            return fault["status"], fault.get("headers", {}), json.dumps(payload).encode()
        if kind == "files":
            return 200, {"Content-Type": "image/png"}, fault["data"]
        if kind == "chat":
            return 200, {}, json.dumps(self._chat(body, fault)).encode()
        if kind == "moderations":
            return 200, {}, json.dumps(self._moderate(body)).encode()
        return 200, {}, json.dumps(self._image(body, fault)).encode()

    def _chat(self, body: dict, fault: dict) -> dict:
        content = fault.get("content", "{json}").replace(
            "{json}", json.dumps(self._answer(body, fault))
        )
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if fault.get("reasoning_only"):
            message = {"role": "assistant", "content": "", "reasoning_content": f"Plan: {content}"}
        if fault.get("refusal"):
            message = {"role": "assistant", "content": None, "refusal": fault["refusal"]}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": message, "finish_reason": fault.get("finish", "stop")}
            ],
            "usage": {
                "prompt_tokens": len(json.dumps(body["messages"])) // 4,
                "completion_tokens": max(1, len(content) // 4),
            },
        }

    def _answer(self, body: dict, fault: dict) -> Any:
        """The model's JSON: following the prompt (canned) or only the schema, then the host's
        quirks. Deterministic for a request body, as a cached reply would be."""
        fmt = body["response_format"]["json_schema"]
        rng = random.Random(content_hash(body))
        if fault.get("schema_only", self.schema_only):
            value = reply_from_schema(fmt["schema"], rng)
        elif fmt["name"] == "PictureReviewReply":
            with self.lock:
                value = conform(review_value(prompt_text(body), self.review_script), fmt["schema"])
        else:
            value = conform(canned_value(fmt["name"], prompt_text(body)), fmt["schema"])
        for criterion in fault.get("drop_criteria", ()):  # a host that ignores the schema
            value.pop(criterion, None)
        if fault.get("drop_scenes") and isinstance(value.get("scenes"), list):
            value["scenes"] = value["scenes"][: -fault["drop_scenes"]]
            value["story_meta"]["scene_count"] = len(value["scenes"])
        return add_quirks(value, set(fault.get("quirks", self.quirks)), rng)

    def _moderate(self, body: dict) -> dict:
        def verdict(text: str) -> dict:
            hit = any(w.lower() in text.lower() for w in self.flag_words)
            return {"flagged": hit, "categories": {"violence": hit, "sexual": False}}

        return {
            "id": "modr-fake",
            "model": body["model"],
            "results": [verdict(t) for t in body["input"]],
        }

    def _image(self, body: dict, fault: dict) -> dict:
        width, height = body.get("width"), body.get("height")
        if "size" in body:
            width, height = (int(v) for v in body["size"].split("x"))
        png = fault.get("png")
        if png is None and self.reuse_images:
            if (width, height) not in self._painted:
                self._painted[(width, height)] = paint_scene("a fox", width, height, 7)
            png = self._painted[(width, height)]
        # Like a reference-taking model, the fake draws the cast from the reference it was sent.
        upload = body.get("image")
        ref = self.uploads.get(upload["sha256"]) if isinstance(upload, dict) else _reference(body)
        png = png or paint(body["prompt"], width, height, body.get("seed", 7), ref)
        if body.get("response_format") == "url":
            name = f"img{len(self.files)}.png"
            self.files[name] = png
            return {"data": [{"url": f"{self.root}/files/{name}?sig=abc"}]}
        return {"data": [{"b64_json": base64.b64encode(png).decode(), "index": 0}]}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Like real APIs: HTTP/1.1, connections kept alive between requests (httpx reuses
            # them, e.g. for a retry) and closed by the server after 5 s idle (uvicorn's
            # default), so a client may find its pooled connection closed under it.
            protocol_version = "HTTP/1.1"
            timeout = 5.0

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _head(self, status: int, headers: dict, length: int) -> None:
                self.send_response(status)
                ctype = headers.pop("Content-Type", "application/json")
                self.send_header("Content-Type", ctype)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def _drop(self, how: Any, kind: str, body: Any) -> None:
                """The connection dies before a full reply, as when a provider's worker
                crashes, a load balancer restarts or a proxy times out: "close" (or True): FIN
                without a byte of reply; "reset": RST (SO_LINGER 0); "partial": the status line,
                headers and half of the body, then FIN."""
                self.close_connection = True
                if how == "partial":
                    status, headers, payload = fake._respond(kind, body, {})
                    self._head(status, headers, len(payload))
                    self.wfile.write(payload[: len(payload) // 2])
                elif how == "reset":
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.rfile.close()  # the makefile's reference: close() below is the last
                    self.connection.close()
                elif how not in (True, "close"):
                    raise ValueError(f"unknown drop fault {how!r}")

            def _handle(self, method: str) -> None:
                path = self.path.split("?")[0]
                kind = (
                    "chat"
                    if path.endswith("/chat/completions")
                    else "images"
                    if path.endswith(("/images/generations", "/images/edits"))
                    else "moderations"
                    if path.endswith("/moderations")
                    else "files"
                )
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                edit = path.endswith("/images/edits")
                body = self._form(raw) if edit else json.loads(raw) if raw else None
                auth = self.headers.get("Authorization")
                with fake.lock:
                    now = time.monotonic()
                    fake.seen.append(Seen(kind, path, now, body, auth))
                    fault = fake.script[kind].popleft() if fake.script[kind] else {}
                    fault = (
                        fake._over_limit(kind, now) or fake._over_tokens(kind, body, now) or fault
                    )
                    if edit and not isinstance(body.get("image"), dict):
                        message = "image is required: a file in a multipart/form-data body"
                        fault = {"status": 400, "body": {"error": {"message": message}}}
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                counted = [True]

                def done() -> None:
                    # Before the answer is written: once it is, the client may free its slot and
                    # send its next request before this thread runs again, which counted 3 in
                    # flight under a client limit of 2 when the machine was loaded.
                    with fake.lock:
                        if counted[0]:
                            counted[0] = False
                            fake.in_flight -= 1

                try:
                    time.sleep(fault.get("sleep", fake.delay_s))
                    if fault.get("drop"):
                        done()
                        self._drop(fault["drop"], kind, body)
                        return
                    if kind == "files":
                        name = path.rsplit("/", 1)[1]
                        fault = {**fault, "data": fake.files.get(name, b"")}
                        if auth:  # the CDN must never see the API key
                            fault = {"status": 400, "body": {"error": "auth sent to CDN"}}
                    elif auth != f"Bearer {fake.api_key}":
                        # Like real APIs, echo (part of) the key: callers must redact it.
                        fault = {
                            "status": 401,
                            "body": {"error": {"message": f"Incorrect API key: {auth}"}},
                        }
                    status, headers, payload = fake._respond(kind, body, fault)
                    done()
                    self._head(status, headers, len(payload))
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client timed out and left
                finally:
                    done()

            def _form(self, raw: bytes) -> dict:
                """An edit's fields, its `image` file described (its bytes in fake.uploads)."""
                try:
                    fields, files = parse_form(self.headers.get("Content-Type", ""), raw)
                except ValueError as exc:
                    return {"error": str(exc)}
                body: dict[str, Any] = dict(fields)
                if "image" in files:
                    up = files["image"]
                    sha = content_hash(up.data)
                    with fake.lock:
                        fake.uploads[sha] = up.data
                    body["image"] = {
                        "filename": up.filename,
                        "content_type": up.content_type,
                        "bytes": len(up.data),
                        "sha256": sha,
                    }
                return body

            def do_POST(self) -> None:  # http.server's naming
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

        return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve the fake as its own process (the benchmark runs it so that painting PNGs does not
    share the caller's GIL): print the /v1 URL on stdout, serve until stdin closes (or
    SIGTERM/SIGINT), then print one JSON line of request counts and exit."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.provider_server")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds slept per request")
    parser.add_argument("--key", default="sk-test-key", help="the API key the fake expects")
    parser.add_argument(
        "--schema-only",
        action="store_true",
        help="the chat model answers from the JSON schema only, ignoring the prompt",
    )
    parser.add_argument(
        "--quirks", default="", help="comma-separated quirks of tests/fakes/schema_model.QUIRKS"
    )
    parser.add_argument(
        "--reuse-images", action="store_true", help="paint once per size, serve it for every prompt"
    )
    parser.add_argument("--rpm", type=int, default=0, help="429 above this many per minute")
    parser.add_argument("--window", type=float, default=60.0, help="seconds the --rpm counts over")
    args = parser.parse_args(argv)
    fake = FakeProvider(api_key=args.key, port=args.port)
    fake.delay_s = args.delay
    fake.reuse_images = args.reuse_images
    fake.schema_only = args.schema_only
    fake.quirks = frozenset(q for q in args.quirks.split(",") if q)
    if args.rpm:
        fake.rate_limit = (max(1, round(args.rpm * args.window / 60)), args.window)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with fake:
        print(fake.url, flush=True)
        waiter = threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True)
        waiter.start()
        done.wait()
    stats = {
        "chat": fake.count("chat"),
        "images": fake.count("images"),
        "files": fake.count("files"),
        "max_in_flight": fake.max_in_flight,
        "rejected_429": fake.rejected,
    }
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
