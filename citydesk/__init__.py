"""Developer and operator commands: the local stack, tokens, contracts, DLQ replay, the demo."""
