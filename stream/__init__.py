"""Floor 2: the event schema, the bus (memory / Kafka) and the pipeline that the bus drives."""
