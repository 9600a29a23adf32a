"""The engine's moving parts: use cases (plain functions), and later the router and the dramatiq actors."""
