"""Solidity source and its committed compiled artifact (package data)."""
