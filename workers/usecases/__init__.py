"""Use cases: couple, sync, uncouple, fix errors — plain functions over a Runtime."""
