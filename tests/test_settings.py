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
