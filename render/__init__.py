"""StyleParams + seed -> pixels."""
