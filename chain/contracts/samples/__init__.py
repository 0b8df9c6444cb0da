"""Sample contracts for demo wallet histories: Solidity sources and their committed artifact (package data)."""
