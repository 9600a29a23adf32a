"""Tests that run use cases against real databases."""
