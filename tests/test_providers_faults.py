"""Real services drop connections and throttle in bursts. Against the loopback fake: a
connection that dies before a full reply (closed, reset, cut mid-body) is retried by the one
retry layer with the attempts in the ledger; a drop on every attempt fails the story with a
clear error and no key; a storm of 429s with Retry-After is waited out as the server asks."""

import asyncio
import selectors
import socket
import time

import pytest
import sqlalchemy as sa

from storygen_dagster.definitions import build_definitions
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.providers import offline
from storygen_dagster.providers.base import CallContext, ProviderError
from storygen_dagster.storage import call_cache, reads
from storygen_dagster.storage import repository as repo
from tests.fakes.helpers import KEY, llm_resource
from tests.fakes.provider_server import FakeProvider

pytest_plugins = ["tests.fakes.fixtures"]  # fake, provider_env, real_resources

DROPS = ["close", "reset", "partial"]  # FIN before a reply, RST, FIN halfway through the body
STORY = offline.story_for(StoryRequest(scene_count=3, child_name="Ada"))
# Longer than any backoff of the test settings (0.01 s .. 0.05 s + jitter): a wait of exactly
# this long was the server's.
RETRY_AFTER = {"retry-after-ms": "200"}


def _register(engine, ids, **fields):
    for sid in ids:
        request = StoryRequest(story_id=sid, child_name=sid.title().replace("-", " "), **fields)
        repo.register_request(engine, sid, request, by="test")


def _status(engine, sid):
    row = reads.story_overview(engine, sid).iloc[0]
    return row["status"], row["error"]


@pytest.mark.parametrize("how", DROPS)
def test_a_dropped_connection_is_retried_and_counted(how, fake, provider_env, engine):
    client = llm_resource(fake).client(engine)
    fake.queue("chat", {"drop": how})
    ctx = CallContext("s-1", "scene_moments", 1)
    result = asyncio.run(client.generate_scene_moment(STORY, 1, ctx))
    assert result.value.scene_number == 1
    assert fake.count("chat") == 2  # the dropped request reached the server
    assert result.provenance.attempts == 2
    [row] = call_cache.ledger(engine).itertuples()
    assert (row.status, row.attempts) == ("succeeded", 2)


def test_a_refused_connection_is_retried_a_bad_scheme_is_not(fake, provider_env, engine):
    ctx = CallContext("s-1", "scene_moments", 1)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        client = llm_resource(fake, base_url=url).client(engine)
        with pytest.raises(ProviderError, match="gave up after 4: connection dropped") as err:
            asyncio.run(client.generate_scene_moment(STORY, 1, ctx))
    assert "ConnectError" in str(err.value) and len(client.calls.http.waits) == 3
    assert list(call_cache.ledger(engine)["attempts"]) == [4]
    # A URL httpx cannot send to fails at once: the same request would fail again.
    client = llm_resource(fake, base_url=fake.url.replace("http://", "htp://")).client(engine)
    with pytest.raises(ProviderError, match="failed on attempt 1: request not sent") as err:
        asyncio.run(client.generate_scene_moment(STORY, 1, ctx))
    assert err.value.attempts == 1 and client.calls.http.waits == [] and fake.count() == 0


def test_dropped_connections_are_retried_and_the_story_completes(
    fake, real_resources, instance, engine
):
    _register(engine, ["drop-1"], scene_count=3)
    # The story's first chat call (structured_story) is dropped twice, its first image (the
    # character sheet) once.
    fake.queue("chat", {"drop": "reset"}, {"drop": "partial"})
    fake.queue("images", {"drop": "close"})
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ["drop-1"])
    assert outcome.success
    assert _status(engine, "drop-1")[0] == "succeeded"
    ledger = call_cache.ledger(engine, "drop-1")
    assert len(ledger) == 6 + 4 and set(ledger["status"]) == {"succeeded"}
    by_asset = ledger.groupby("asset")["attempts"].apply(sorted).to_dict()
    assert by_asset["structured_story"] == [3]
    assert by_asset["character_sheet"] == [2]
    assert by_asset["scene_images"] == [1, 1, 1]
    assert by_asset["scene_moments"] == [1, 1, 1]
    # Every attempt was a request the server saw: 10 calls + 3 dropped.
    assert fake.count() == ledger["attempts"].sum() == 13


def test_a_drop_on_every_attempt_fails_the_story_clearly_without_the_key(
    fake, real_resources, instance, engine
):
    _register(engine, ["dropped-1"], scene_count=3)
    fake.queue("chat", *[{"drop": how} for how in DROPS * 4])
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ["dropped-1"])
    assert not outcome.success
    assert fake.count("chat") == 4 and fake.count("images") == 0  # STORYGEN_RETRY_ATTEMPTS=4
    assert all(s.auth == f"Bearer {KEY}" for s in fake.seen)  # the key was really sent
    status, error = _status(engine, "dropped-1")
    assert status == "failed"
    assert "structured_story" in error and "gave up after 4" in error
    assert "connection dropped" in error and "RemoteProtocolError" in error
    [row] = call_cache.ledger(engine, "dropped-1").itertuples()
    assert (row.status, row.attempts, row.http_status) == ("failed", 4, None)
    assert row.error and "connection dropped" in row.error
    texts = [error, row.error]
    for record in instance.get_run_records():
        texts += [str(e) for e in instance.all_logs(record.dagster_run.run_id)]
    with engine.connect() as conn:
        for table in ("stories", "provider_calls"):
            texts += [r[0] for r in conn.execute(sa.text(f"select t::text from {table} t"))]
    assert not [t for t in texts if KEY in t]


def test_a_429_storm_waits_exactly_what_the_server_asks(fake, provider_env, engine):
    provider_env.setenv("STORYGEN_RETRY_ATTEMPTS", "8")  # more than the storm's 429s
    client = llm_resource(fake).client(engine)
    fake.queue("chat", *[{"status": 429, "headers": dict(RETRY_AFTER)}] * 6)

    async def three_scenes():
        return await asyncio.gather(
            *(
                client.generate_scene_moment(STORY, n, CallContext("s-1", "scene_moments", n))
                for n in (1, 2, 3)
            )
        )

    results = asyncio.run(three_scenes())
    assert [r.value.scene_number for r in results] == [1, 2, 3]
    assert fake.count("chat") == 3 + 6
    assert client.calls.http.waits == [0.2] * 6  # Retry-After, never our own backoff
    ledger = call_cache.ledger(engine)
    assert set(ledger["status"]) == {"succeeded"} and ledger["attempts"].sum() == 3 + 6


def test_a_429_storm_is_survived_by_a_batch(fake, real_resources, instance, engine, provider_env):
    provider_env.setenv("STORYGEN_RETRY_ATTEMPTS", "8")  # more than the storm's 429s per kind
    ids = ["storm-1", "storm-2"]
    _register(engine, ids, scene_count=3)
    fake.queue("chat", *[{"status": 429, "headers": dict(RETRY_AFTER)}] * 6)
    fake.queue("images", *[{"status": 429, "headers": {"Retry-After": "1"}}] * 3)
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ids)
    assert outcome.success
    assert {_status(engine, sid)[0] for sid in ids} == {"succeeded"}
    ledger = call_cache.ledger(engine)
    assert len(ledger) == 2 * (6 + 4) and set(ledger["status"]) == {"succeeded"}
    chat = ledger[ledger["endpoint"] == "chat/completions"]
    images = ledger[ledger["endpoint"] != "chat/completions"]
    # Per story 3 scenes and a character sheet.
    assert chat["attempts"].sum() == 12 + 6 and images["attempts"].sum() == 8 + 3
    assert fake.count() == 20 + 9


def _get(sock: socket.socket, path: str) -> bytes:
    """One HTTP/1.1 request on an open connection; the status line and headers of the reply."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: fake\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def test_the_fake_takes_a_burst_of_connections_and_keeps_them_alive():
    """A real server's listen backlog holds a burst of connections until it accepts them.
    socketserver's default (5) held 6: Linux dropped the other SYNs, and under load it reset
    connections after the client had sent its request (httpx.ReadError in the bench)."""
    fake = FakeProvider(api_key=KEY)  # listening, not accepting yet
    port = fake.server.server_address[1]
    socks, selector = [], selectors.DefaultSelector()
    for _ in range(64):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE)
        socks.append(sock)
    connected, give_up = 0, time.monotonic() + 10  # a bound on a failing run, not a timing check
    while connected < len(socks) and time.monotonic() < give_up:
        for key, _ in selector.select(timeout=0.5):
            selector.unregister(key.fileobj)
            connected += 1
    try:
        assert connected == 64  # all in the backlog; with request_queue_size=5: 6
        with fake:
            for sock in socks:
                sock.setblocking(True)
                sock.settimeout(30)
            heads = [_get(sock, "/v1/files/none") for sock in socks]
            assert all(h.startswith(b"HTTP/1.1 200 ") for h in heads)
            # Keep-alive: a second request on the same connection is answered too.
            assert _get(socks[0], "/v1/files/none").startswith(b"HTTP/1.1 200 ")
            assert fake.count("files") == 65
    finally:
        for sock in socks:
            sock.close()
        fake.server.server_close()
