"""The story plan's rules (domain/plan.py), which the engine, the writes, `storygen status`
and the up_to_date check share."""

from storygen_dagster.domain.plan import needs_build, user_owned, value_state


def test_a_user_edit_is_owned_until_an_overwrite():
    sources = {"text": "user", "moment": "ai", "image_uri": None}
    assert user_owned(sources) == {"text"}
    assert user_owned(sources, ["moment", "text"]) == {"text"}
    assert user_owned(sources, ["moment"]) == set()
    assert user_owned(sources, overwrite=True) == set()
    assert user_owned(None) == set()


def test_a_value_is_current_only_when_its_inputs_are_unchanged():
    assert value_state("a", "a", built=True) is None
    assert value_state("a", "b", built=True) == "inputs changed"
    assert value_state("a", None, built=True) == "no fingerprint"
    assert value_state("a", "a", built=False) == "missing"
    assert not needs_build("a", "a") and needs_build("a", "b") and needs_build("a", None)
