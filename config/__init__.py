"""Settings, the mapping file and the composition root that wires the adapters together."""
