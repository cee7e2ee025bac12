import dagster as dg

# One partition per story; keys are validated story ids (domain.ids) before they are added.
story_partitions = dg.DynamicPartitionsDefinition(name="stories")
