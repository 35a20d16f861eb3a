"""imgflow infrastructure documents (state machine, IAM policies), built from config."""
