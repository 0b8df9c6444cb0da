"""The Persona Mint service: HTTP API, queue, workers, CLI."""
