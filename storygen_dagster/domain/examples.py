"""Example requests for `storygen demo`: varied, so the books differ."""

from storygen_dagster.domain.models import StoryRequest

_EXAMPLES = [
    dict(
        child_name="Maya",
        age=5,
        gender="girl",
        personality=["curious", "shy"],
        fears=["the dark"],
        favorites={"animal": "fox", "color": "orange", "toy": "lantern"},
        value_to_teach="sharing",
        setting="a quiet forest with tall pine trees",
        tone="warm and gentle",
        scene_count=4,
        side_character="a friendly fox named Pip",
        prompt="A 5-year-old who is afraid of the dark and loves foxes; teach sharing",
    ),
    dict(
        child_name="Omar",
        age=4,
        gender="boy",
        fears=["thunder"],
        favorites={"animal": "turtle", "color": "green", "toy": "paper boat"},
        value_to_teach="patience",
        setting="a seaside village with colorful boats",
        scene_count=3,
    ),
    dict(
        child_name="Lina",
        age=6,
        gender="girl",
        personality=["brave", "giggly"],
        favorites={"animal": "owl", "color": "purple", "toy": "kite"},
        value_to_teach="honesty",
        tone="whimsical",
        scene_count=5,
    ),
    dict(
        child_name="Theo",
        age=3,
        gender="boy",
        fears=["big dogs"],
        value_to_teach="kindness",
        setting="a cozy farm with a red barn",
    ),
    dict(
        age=5,
        prompt="A story about a child who learns to say thank you",
        value_to_teach="gratitude",
    ),
]


def demo_requests(count: int) -> list[StoryRequest]:
    requests = []
    for i in range(count):
        base = dict(_EXAMPLES[i % len(_EXAMPLES)])
        if i >= len(_EXAMPLES):
            base.pop("child_name", None)  # later rounds: let the generator pick a new child
            base["prompt"] = (
                f"{base.get('prompt', 'A bedtime story')} (variation {i // len(_EXAMPLES)})"
            )
        requests.append(StoryRequest(story_id=f"demo-{i + 1:02d}", **base))
    return requests
