"""The chat client against the loopback fake: retries, waits, reply parsing, repair, no-retry
4xx, cache and budget. Calls go straight through the client (no Dagster run) to stay fast."""

import asyncio
import json
import time

import pytest
import sqlalchemy as sa

from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.providers import offline
from storygen_dagster.providers.base import CallContext, ProviderError
from storygen_dagster.providers.calls import BudgetExceeded
from storygen_dagster.storage import call_cache
from storygen_dagster.storage.tables import budget_holds
from tests.fakes.helpers import KEY, llm_resource

pytest_plugins = ["tests.fakes.fixtures"]  # fake, provider_env, real_resources

STORY = offline.story_for(StoryRequest(scene_count=3, child_name="Ada"))


def moment(client, scene=1, story_id="s-1", fresh=False):
    ctx = CallContext(story_id, "scene_moments", scene, fresh=fresh)
    return asyncio.run(client.generate_scene_moment(STORY, scene, ctx))


@pytest.fixture()
def client(fake, provider_env, engine):
    return llm_resource(fake).client(engine)


def test_429_retry_after_is_honoured(fake, client, engine):
    fake.queue("chat", {"status": 429, "headers": {"Retry-After": "1"}})
    result = moment(client)
    assert result.value.scene_number == 1
    assert fake.count("chat") == 2
    first, second = fake.times("chat")
    assert second - first >= 0.95  # the server's wait, not the 0.01 s backoff
    assert client.calls.http.waits == [1.0]
    assert result.provenance.attempts == 2
    row = call_cache.ledger(engine).iloc[0]
    assert (row["status"], row["attempts"]) == ("succeeded", 2)


def test_retry_after_is_capped(fake, provider_env, engine):
    provider_env.setenv("STORYGEN_RETRY_AFTER_MAX_S", "0.2")
    client = llm_resource(fake).client(engine)
    fake.queue("chat", {"status": 429, "headers": {"Retry-After": "120"}})
    started = time.monotonic()
    moment(client)
    assert client.calls.http.waits == [0.2]
    assert time.monotonic() - started < 5


def test_503_then_success(fake, client):
    fake.queue("chat", {"status": 503}, {"status": 502})
    result = moment(client)
    assert fake.count("chat") == 3
    assert result.provenance.attempts == 3
    assert all(w <= 0.06 for w in client.calls.http.waits)


def test_read_timeout_then_success(fake, provider_env, engine):
    provider_env.setenv("STORYGEN_LLM_READ_TIMEOUT_S", "0.3")
    client = llm_resource(fake).client(engine)
    fake.queue("chat", {"sleep": 1.0})
    result = moment(client)
    assert fake.count("chat") == 2
    assert result.provenance.attempts == 2


def test_5xx_gives_up_after_the_attempt_budget(fake, client, engine):
    fake.queue("chat", *[{"status": 500}] * 10)
    with pytest.raises(ProviderError, match="gave up after 4") as err:
        moment(client)
    assert err.value.status_code == 500
    assert fake.count("chat") == 4
    row = call_cache.ledger(engine).iloc[0]
    assert (row["status"], row["http_status"], row["attempts"]) == ("failed", 500, 4)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(fake, client, status):
    fake.queue("chat", {"status": status})
    with pytest.raises(ProviderError) as err:
        moment(client)
    assert err.value.status_code == status
    assert fake.count("chat") == 1


def test_wrong_key_401_is_not_retried_and_the_key_is_redacted(fake, provider_env, engine):
    bad_key = "sk-wrong-" + KEY
    client = llm_resource(fake, api_key=bad_key).client(engine)
    with pytest.raises(ProviderError) as err:
        moment(client)
    assert fake.count("chat") == 1 and err.value.status_code == 401
    assert bad_key not in str(err.value) and "***" in str(err.value)
    assert bad_key not in call_cache.ledger(engine).to_string()


@pytest.mark.parametrize(
    "content",
    [
        "```json\n{json}\n```",
        "Sure! Here is the scene:\n\n{json}\n\nLet me know if you want changes.",
        '<think>The user wants {"scene_number": 9}. Fine.</think>\n{json}',
        "reasoning without an opening tag</think>```\n{json}\n```",
    ],
    ids=["fenced", "chatter", "think", "half-think"],
)
def test_messy_replies_parse_without_a_repair(fake, client, content):
    fake.queue("chat", {"content": content})
    assert moment(client).value.moment.startswith("the child smiles")
    assert fake.count("chat") == 1


def test_answer_only_in_reasoning_content(fake, client):
    fake.queue("chat", {"reasoning_only": True})
    assert moment(client).value.scene_number == 1
    assert fake.count("chat") == 1


def test_schema_invalid_reply_gets_one_repair(fake, client, engine):
    fake.queue("chat", {"content": '{"scene_number": 1, "mood": "happy"}'})
    result = moment(client)
    assert result.value.moment and fake.count("chat") == 2
    repair_messages = fake.seen[1].body["messages"]
    assert "did not match the schema" in repair_messages[-1]["content"]
    assert "moment" in repair_messages[-1]["content"]  # the validation error is shown
    assert result.provenance.attempts == 2
    ledger = call_cache.ledger(engine)
    assert list(ledger["status"]) == ["succeeded", "succeeded"]  # the pair replays on re-run
    assert moment(client).provenance.cached and fake.count("chat") == 2


def test_invalid_twice_fails_with_the_validation_error(fake, client, engine):
    fake.queue("chat", {"content": "not json at all"}, {"content": '{"moment": ""}'})
    with pytest.raises(ProviderError, match="after one repair"):
        moment(client)
    assert fake.count("chat") == 2
    assert set(call_cache.ledger(engine)["status"]) == {"failed"}


def test_truncated_reply_fails_clearly(fake, client):
    fake.queue("chat", {"content": '{"scene_number": 1, "mom', "finish": "length"})
    with pytest.raises(ProviderError, match="STORYGEN_LLM_MAX_TOKENS"):
        moment(client)
    assert fake.count("chat") == 1


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        ("<html><body>502 Bad Gateway</body></html>", "has no choices: <html>"),
        ([{"message": {"content": "{}"}}], "has no choices"),
        ({"choices": "overloaded"}, "has no choices"),
        ({"choices": [{"message": "hi"}]}, "message is not an object: hi"),
        ({"choices": [{"message": {"content": 5}}]}, "content is not text: 5"),
    ],
)
def test_a_reply_of_another_shape_fails_clearly_and_is_ledgered(
    fake, client, engine, reply, needle
):
    """Valid JSON of another shape was an AttributeError or TypeError: the story failed with
    "'str' object has no attribute 'get'" and the paid call was never ledgered (neither the
    story's nor the day's budget counted it; every re-run paid for it again)."""
    fake.queue("chat", {"status": 200, "body": reply})
    with pytest.raises(ProviderError, match=needle):
        moment(client)
    ledger = call_cache.ledger(engine)
    assert list(ledger["status"]) == ["failed"] and ledger.iloc[0]["cost_usd"] > 0


def test_a_usage_that_is_not_a_count_is_estimated(fake, client, engine):
    reply = {"scene_number": 1, "moment": "Ada smiles"}
    body = {
        "choices": [{"message": {"content": json.dumps(reply)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": "many", "completion_tokens": None},
    }
    fake.queue("chat", {"status": 200, "body": body})
    assert moment(client).value.moment == "Ada smiles"  # was ValueError: int("many")
    row = call_cache.ledger(engine).iloc[0]
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


def test_refusal_fails_clearly(fake, client):
    fake.queue("chat", {"refusal": "I can't help with that."})
    with pytest.raises(ProviderError, match="refused"):
        moment(client)
    assert fake.count("chat") == 1


def test_cached_call_is_reused_and_fresh_bypasses_it(fake, client, engine):
    first = moment(client)
    again = moment(client)
    assert fake.count("chat") == 1
    assert again.provenance.cached and not first.provenance.cached
    assert again.value == first.value
    assert again.provenance.cost_usd == first.provenance.cost_usd > 0
    moment(client, fresh=True)
    assert fake.count("chat") == 2
    row = call_cache.ledger(engine).iloc[0]
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["cost_usd"] > 0
    assert len(call_cache.ledger(engine)) == 1  # one row per distinct request


def test_request_body_has_a_strict_json_schema(fake, client):
    moment(client)
    body = fake.seen[0].body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["moment", "scene_number"]
    assert fake.seen[0].auth == f"Bearer {KEY}"


def test_budget_is_checked_before_the_call(fake, provider_env, engine):
    provider_env.setenv("STORYGEN_MAX_COST_PER_STORY_USD", "0.000001")
    client = llm_resource(fake).client(engine)
    with pytest.raises(BudgetExceeded, match="STORYGEN_MAX_COST_PER_STORY_USD"):
        moment(client)
    assert fake.count("chat") == 0


def test_a_paid_reply_an_unexpected_error_stops_is_ledgered_and_its_hold_released(
    fake, provider_env, engine, monkeypatch
):
    """Any error between the paid reply and its ledger row (here a bug in parsing) still
    records the call as failed with its cost, and releases the day's budget hold: before,
    only ProviderError and InvalidReply did, and the call went unrecorded."""
    monkeypatch.setenv("STORYGEN_MAX_COST_PER_DAY_USD", "10")
    client = llm_resource(fake).client(engine)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in parsing")

    monkeypatch.setattr("storygen_dagster.providers.openai_chat.parse_reply", broken)
    with pytest.raises(RuntimeError, match="a bug in parsing"):
        moment(client)
    ledger = call_cache.ledger(engine)
    assert list(ledger["status"]) == ["failed"] and ledger.iloc[0]["cost_usd"] > 0
    assert ledger.iloc[0]["error"] == "RuntimeError: a bug in parsing"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(budget_holds)).scalar() == 0
