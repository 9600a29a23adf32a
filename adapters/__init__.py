"""Adapters that producers and workers share: the coupling store and the connectors to the systems."""
