"""The conversation: memory, intents, orchestration and the command line."""
