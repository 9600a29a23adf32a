"""Producers: turning changes in the systems into events on the bus."""
