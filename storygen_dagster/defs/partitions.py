import dagster as dg

# One partition per story; keys are validated story ids (domain.ids) before they are added.
STORY_PARTITIONS_NAME = "stories"
story_partitions = dg.DynamicPartitionsDefinition(name=STORY_PARTITIONS_NAME)
