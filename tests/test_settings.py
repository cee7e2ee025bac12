"""Every STORYGEN_* value is a Settings field: read from the environment or `.env`, and a bad
value is refused naming the field."""

from __future__ import annotations

import pydantic
import pytest

from storygen_dagster.recovery import recovery_settings
from storygen_dagster.storage.db import outage_grace_s


def test_recovery_timeouts_and_outage_grace_come_from_the_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STORYGEN_RUN_START_TIMEOUT_S=42\n")
    monkeypatch.setenv("STORYGEN_REQUEST_LAUNCH_GRACE_S", "7")
    monkeypatch.setenv("STORYGEN_DB_OUTAGE_GRACE_S", "2.5")
    timeouts = recovery_settings()
    assert timeouts.start_timeout_s == 42  # from .env
    assert timeouts.launch_grace_s == 7  # from the environment
    assert timeouts.monitoring_poll_s == 30  # the default
    assert outage_grace_s() == 2.5


def test_a_bad_timeout_is_refused_naming_the_field(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STORYGEN_RUN_CANCEL_TIMEOUT_S", "soon")
    with pytest.raises(pydantic.ValidationError, match="run_cancel_timeout_s"):
        recovery_settings()


def test_settings_are_read_again_when_the_environment_or_env_file_changes(monkeypatch, tmp_path):
    """get_settings reuses its last read (a CLI run asked ~20 times before its first provider
    call): only while nothing it reads has changed."""
    from storygen_dagster.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STORYGEN_MAX_CONCURRENCY", raising=False)
    monkeypatch.delenv("STORYGEN_LLM_MODEL", raising=False)
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("STORYGEN_MAX_CONCURRENCY", "7")
    assert get_settings().max_concurrency == 7
    monkeypatch.setenv("storygen_max_concurrency", "8")  # matched in any case, as pydantic does
    monkeypatch.delenv("STORYGEN_MAX_CONCURRENCY")
    assert get_settings().max_concurrency == 8
    (tmp_path / ".env").write_text("STORYGEN_LLM_MODEL=from-the-file\n")
    assert get_settings().llm_model == "from-the-file"
    (tmp_path / ".env").write_text("STORYGEN_LLM_MODEL=edited-in-the-file\n")
    assert get_settings().llm_model == "edited-in-the-file"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert get_settings().llm_model != "edited-in-the-file"
