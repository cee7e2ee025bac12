"""What `storygen demo` prints for people (issue 13, item 6): a line per story stage, a summary,
no DB or Dagster event lines without -v, one error line per failed story, pure JSON on stdout
with --json. Run as a user runs it: a subprocess whose stdout and stderr are pipes (not a TTY)."""

import json
import re
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from storygen_dagster.console import Console, redactor
from storygen_dagster.engine.vocabulary import ASSETS
from tests.conftest import storygen

DAGSTER_EVENTS = ("STEP_START", "ASSET_MATERIALIZATION", "RUN_START", "dagster - ")


def _progress(stderr: str, sid: str) -> list[str]:
    """The assets of the story's progress lines, in the order printed."""
    return re.findall(rf"^{sid}\s+✓ (\w+)\s+\d/{len(ASSETS)}", stderr, flags=re.MULTILINE)


def _db_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\bdb [a-z_]+ story_id=", line)]


@pytest.mark.integration
def test_default_output_is_progress_and_summary_and_verbose_adds_the_details(cli_env, tmp_path):
    out = storygen(["demo", "--stories", "2"], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    both = out.stdout + out.stderr
    for sid in ("demo-01", "demo-02"):
        assert sorted(_progress(out.stderr, sid)) == sorted(ASSETS), out.stderr
        book_line = next(ln for ln in out.stderr.splitlines() if f"{sid}  ✓ storybook" in ln)
        assert re.search(r"\$\d+\.\d{4}\s+\S+/books/" + sid + r"/[0-9a-f]{64}\.html$", book_line)
        row = rf"^{sid}\s+succeeded\s+\d\s+\$\d+\.\d{{4}}\s+\S+\.html$"
        assert re.search(row, out.stdout, re.M), out.stdout
    assert out.stdout.splitlines()[0].split() == ["story", "status", "scenes", "cost", "books"]
    assert re.search(r"^2 books made, 0 failed, [\d.]+ s, cost \$0\.0000", out.stdout, re.M)
    assert _db_lines(both) == []
    assert not [event for event in DAGSTER_EVENTS if event in both]
    # Pipes, not a terminal: plain lines, no colour or cursor control.
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", both)
    # "Generating", the stages, a print_preflight warning per story, the table's header and
    # three files per story, the totals and the hint.
    assert len(both.splitlines()) <= 1 + 2 * len(ASSETS) + 2 + 1 + 2 * 3 + 2

    verbose = storygen(["-v", "demo", "--stories", "2"], cli_env, tmp_path)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    db = _db_lines(verbose.stderr)
    assert any("db load_requests story_id=demo-01" in line for line in db)
    assert "STEP_START" in verbose.stderr and "ASSET_MATERIALIZATION" in verbose.stderr
    # Each DB line once: a line Dagster's console echoes inside the step is not repeated (an
    # echo doubles every line of the step). Two real reads of the same row can take the same
    # milliseconds, so a few identical lines are allowed.
    ops = [re.search(r"db \S+ story_id=\S+ scene_id=\S+ rows=\d+ ms=[\d.]+", ln) for ln in db]
    assert all(ops)
    repeated = len(ops) - len({m.group(0) for m in ops})
    assert repeated <= len(ops) // 20, (repeated, len(ops))
    assert sorted(_progress(verbose.stderr, "demo-02")) == sorted(ASSETS)
    assert "2 books made, 0 failed" in verbose.stdout


@pytest.mark.integration
def test_a_held_story_prints_one_error_line_and_the_command_fails(cli_env, tmp_path):
    env = {**cli_env, "STORYGEN_CONTENT_BLOCKLIST": '["Omar"]'}  # demo-02's child
    out = storygen(["demo", "--stories", "2"], env, tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    errors = [ln for ln in out.stderr.splitlines() if "demo-02" in ln and "content_safety" in ln]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith("demo-02  ✗ storybook: check content_safety failed: ")
    assert "omar" in errors[0]
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == "Error: generation failed for: demo-02"
    assert sorted(_progress(out.stderr, "demo-01")) == sorted(ASSETS)
    assert "storybook" not in _progress(out.stderr, "demo-02")
    assert re.search(r"^demo-02\s+held\s+3\s+\$0\.0000\s+-$", out.stdout, re.M), out.stdout
    assert "1 book made, 1 failed" in out.stdout
    assert _db_lines(out.stdout + out.stderr) == []

    # --json: stdout is the same JSON object as ever; the error line still goes to stderr.
    as_json = storygen(["demo", "--stories", "2", "--json"], env, tmp_path)
    assert as_json.returncode == 1
    payload = json.loads(as_json.stdout)
    assert set(payload) == {"stories", "database_url", "database", "runs"}
    keys = {"story_id", "title", "scenes", "book", "pdf", "epub"}
    assert [set(s) for s in payload["stories"]] == [keys] * 2
    assert len([ln for ln in as_json.stderr.splitlines() if ln.startswith("demo-02  ✗")]) == 1


def test_error_lines_carry_no_api_key_and_stay_on_one_line(capsys):
    key = "sk-live-0123456789abcdef"
    settings = SimpleNamespace(
        llm_api_key=SecretStr(key), image_api_key=None, moderation_api_key=None
    )
    console = Console(["s1", "s2", "s3"], 6, redactor(settings))
    console.report_failures(
        [
            {"story_id": "s1", "status": "succeeded", "error": None},
            {
                "story_id": "s2",
                "status": "failed",
                "error": f"structured_story: HTTP 401\n  key {key} rejected\n"
                "Authorization: Bearer other-token-xyz",
            },
            {"story_id": "s3", "status": "failed", "error": "x" * 500},
        ],
        success=False,
    )
    err = capsys.readouterr().err
    assert key not in err and "other-token-xyz" not in err
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "s2  ✗ structured_story: HTTP 401 key *** rejected Authorization: Bearer ***"
    )
    assert lines[1].startswith("s3  ✗ xxx") and lines[1].endswith(
        "... (the whole error: storygen status s3)"
    )
    assert "\x1b" not in err  # not a terminal: no colour codes


def test_a_story_failure_logged_mid_batch_prints_its_line_once(capsys):
    from storygen_dagster.defs.story.failures import story_failed_message

    def log_entry(message):
        return SimpleNamespace(
            asset_materialization=None,
            asset_check_evaluation=None,
            dagster_event=None,
            user_message=message,
        )

    console = Console(["s1", "s2"], 6, redactor(SimpleNamespace()))
    console.on_event(log_entry("an ordinary line"))
    console.on_event(log_entry(story_failed_message("s2", "failed", "scene_images: HTTP 400")))
    console.on_event(log_entry(story_failed_message("other", "failed", "not in this batch")))
    assert capsys.readouterr().err == "s2  ✗ scene_images: HTTP 400\n"
    # At the end, the story row's error is not printed a second time.
    console.report_failures(
        [
            {"story_id": "s1", "status": "succeeded", "error": None},
            {"story_id": "s2", "status": "failed", "error": "scene_images: HTTP 400"},
        ],
        success=False,
    )
    assert capsys.readouterr().err == ""


def test_a_missing_file_shows_as_a_dash():
    from storygen_dagster.console import shown_path

    # pandas gives NaN for a column whose values are all null (no story has a PDF yet).
    assert [shown_path(v) for v in (None, "", float("nan"))] == ["-", "-", "-"]
