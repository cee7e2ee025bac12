"""docs/analyst-guide.md's notebook code, executed against a real instance (dagster-postgres on
the test database, as storygen sets it up) after a real run of three stories."""

import re
from pathlib import Path

from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import repository as repo

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "analyst-guide.md"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)


def test_analyst_guide_notebook_runs_against_a_real_instance(
    engine, database_url, object_root, test_defs, tmp_path, monkeypatch, capsys
):
    from storygen_dagster.instance import get_instance
    from storygen_dagster.settings import get_settings

    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # restored after the test
    monkeypatch.setenv("STORYGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STORYGEN_DATABASE_URL", database_url)
    monkeypatch.setenv("STORYGEN_OBJECT_STORE_URL", str(object_root))
    instance = get_instance(get_settings(), database_url)
    ids = ["nb-1", "nb-2", "nb-3"]
    for sid in ids:
        repo.register_request(engine, sid, StoryRequest(story_id=sid, scene_count=3), by="test")
    assert all(o.success for o in materialize_stories(test_defs, instance, ids))
    blocks = _python_blocks(GUIDE.read_text())
    assert blocks, "docs/analyst-guide.md has no ```python block"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), namespace)  # our own docs
    overview = namespace["overview"]
    assert overview.index.tolist() == ids
    assert overview.scenes.tolist() == [3, 3, 3]
    assert all(u.startswith(str(object_root)) for u in overview.book)
    assert len(namespace["images"].image_png[0]) > 1000
    assert namespace["story"].story_meta.story_title in capsys.readouterr().out
