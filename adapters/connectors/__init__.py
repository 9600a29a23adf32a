"""Connectors: the engine's view of one system (read, query, create, update, delete records)."""
