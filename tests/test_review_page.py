"""The review page (`storygen review serve`, issue 17) served by uvicorn on loopback against a
real database and Dagster instance: decisions without the reviewer token or with a bad CSRF
token are refused and change nothing; in Debian's Chromium (Playwright, no browser
download) a reviewer signs in, edits a scene, rejects one story and approves another."""

import threading
import time

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import MAX_SCENES, StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.review_app.app import create_app
from storygen_dagster.review_app.security import COOKIE
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage import reviews
from tests.dev_process import free_port

TOKEN = "s3cret-review-token"
CHROMIUM = "/usr/bin/chromium"


def _rows(engine, sql, **params):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def _status(engine, sid):
    return _rows(engine, "select status from stories where story_id = :s", s=sid)[0]["status"]


@pytest.fixture()
def held(engine, instance, resources, monkeypatch):
    """Two stories awaiting review."""
    from storygen_dagster.definitions import build_definitions

    monkeypatch.setenv("STORYGEN_REVIEW", "story")
    defs = build_definitions(resources)
    ids = ["page-a", "page-b"]
    for sid in ids:
        repo.register_request(engine, sid, StoryRequest(story_id=sid, scene_count=3), by="t")
    assert all(o.success for o in materialize_stories(defs, instance, ids))
    assert {r["story_id"] for r in reviews.awaiting(engine)} == set(ids)
    return ids


@pytest.fixture()
def server(engine, instance, held):
    port = free_port()
    config = uvicorn.Config(
        create_app(engine, instance, TOKEN), host="127.0.0.1", port=port, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


def _signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base)
    answer = client.post("/login", data={"name": "ruth", "token": TOKEN})
    assert answer.status_code == 303 and COOKIE in client.cookies
    return client


def _csrf(client: httpx.Client) -> str:
    page = client.get("/").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_decisions_without_the_token_or_a_valid_csrf_token_are_refused(server, engine, monkeypatch):
    anonymous = httpx.Client(base_url=server)
    assert "Reviewer token" in anonymous.get("/").text  # the stories need a sign-in too
    assert anonymous.post("/stories/page-a/approve", data={"csrf": "x"}).status_code == 403
    wrong = anonymous.post("/login", data={"name": "mallory", "token": "guess"})
    assert wrong.status_code == 403 and COOKIE not in anonymous.cookies
    forged = httpx.Client(base_url=server, cookies={COOKIE: "abc.6d616c6c6f7279.f00"})
    assert forged.post("/stories/page-a/approve", data={"csrf": "x"}).status_code == 403

    client = _signed_in(server)
    csrf = _csrf(client)
    assert client.post("/stories/page-a/approve", data={}).status_code == 403
    assert client.post("/stories/page-a/approve", data={"csrf": csrf + "0"}).status_code == 403
    cross = client.post(
        "/stories/page-a/approve",
        data={"csrf": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    # Validated inputs: a bad story id, scene number, an over-long note, an unknown story.
    assert client.post("/stories/Page..A/approve", data={"csrf": csrf}).status_code == 400
    bad_scene = {"csrf": csrf, "scene_number": "9", "text": "x"}
    assert client.post("/stories/page-a/edit", data=bad_scene).status_code == 400
    # The page's bound is the model's MAX_SCENES, not a number of its own: past it the page
    # refuses; within it, a scene the story lacks is the edit's refusal. (The model allows
    # no sixth scene today; were MAX_SCENES 6, scene 6 would reach the edit.)
    past = {"csrf": csrf, "scene_number": str(MAX_SCENES + 1), "text": "x"}
    refusal = client.post("/stories/page-a/edit", data=past)
    assert refusal.status_code == 400 and f"scene_number: 1 to {MAX_SCENES}" in refusal.text
    with monkeypatch.context() as patched:
        patched.setattr("storygen_dagster.review_app.app.MAX_SCENES", MAX_SCENES + 1)
        refusal = client.post("/stories/page-a/edit", data=past)
    assert refusal.status_code == 400 and f"has no scene {MAX_SCENES + 1}" in refusal.text
    long_note = {"csrf": csrf, "note": "n" * 2001}
    assert client.post("/stories/page-a/reject", data=long_note).status_code == 400
    assert client.post("/stories/nope-1/approve", data={"csrf": csrf}).status_code == 404
    assert _status(engine, "page-a") == "awaiting_review"
    assert not _rows(engine, "select * from audit_log where field = 'review'")

    ok = client.post("/stories/page-a/approve", data={"csrf": csrf, "note": "fine"})
    assert ok.status_code == 303 and reviews.state(engine, "page-a")["state"] == "approved"
    again = client.post("/stories/page-a/approve", data={"csrf": csrf})
    assert again.status_code == 303 and "already" in again.headers["location"]
    late = client.post("/stories/page-a/reject", data={"csrf": csrf, "note": "no"})
    assert late.status_code == 409
    page = client.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "page-a" not in page.text and "page-b" in page.text


def test_reviewer_approves_rejects_and_edits_in_chromium(server, engine):
    from playwright.sync_api import expect, sync_playwright

    edited = "Ruth changed this first scene: everyone shares the lantern."
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server)
            page.get_by_label("Your name").fill("Ruth Reviewer")
            page.get_by_label("Reviewer token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#reviewer")).to_have_text("Ruth Reviewer")
            story_a, story_b = page.locator("#story-page-a"), page.locator("#story-page-b")
            expect(story_a.locator(".scene")).to_have_count(3)

            story_a.get_by_text("Edit scene 1").click()
            story_a.locator("form.edit").first.get_by_label("Text").fill(edited)
            story_a.get_by_role("button", name="Save scene 1").click()
            expect(page.get_by_role("status")).to_contain_text("page-a scene 1: text")
            expect(story_a.locator(".scene .text").first).to_have_text(edited)

            story_b.locator("form.reject").get_by_label("What should change?").fill(
                "Less rain, more sunshine"
            )
            story_b.get_by_role("button", name="Reject").click()
            expect(page.get_by_role("status")).to_contain_text("page-b: rejected by Ruth Reviewer")
            expect(page.locator("#story-page-b")).to_have_count(0)

            story_a.locator("form.approve").get_by_label("Note (optional)").fill("Lovely")
            story_a.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("status")).to_contain_text("page-a: approved by Ruth Reviewer")
            expect(page.locator("#empty")).to_be_visible()
        finally:
            browser.close()

    scene_1 = _rows(
        engine, "select text from scenes where story_id = 'page-a' and scene_number = 1"
    )
    assert scene_1 == [{"text": edited}]
    assert reviews.state(engine, "page-a")["state"] == "approved"
    assert reviews.state(engine, "page-b")["note"] == "Less rain, more sunshine"
    audit = _rows(
        engine,
        "select story_id, asset, field, scene_number, source, updated_by, note, new_value_sha256"
        " from audit_log where source = 'user' order by id",
    )
    assert audit == [
        {
            "story_id": "page-a",
            "asset": "structured_story",
            "field": "text",
            "scene_number": 1,
            "source": "user",
            "updated_by": "Ruth Reviewer",
            "note": None,
            "new_value_sha256": content_hash(edited),
        },
        {
            "story_id": "page-b",
            "asset": "scene_moments",
            "field": "review",
            "scene_number": None,
            "source": "user",
            "updated_by": "Ruth Reviewer",
            "note": "Less rain, more sunshine",
            "new_value_sha256": content_hash("rejected"),
        },
        {
            "story_id": "page-a",
            "asset": "scene_moments",
            "field": "review",
            "scene_number": None,
            "source": "user",
            "updated_by": "Ruth Reviewer",
            "note": "Lovely",
            "new_value_sha256": content_hash("approved"),
        },
    ]
