"""The pure core of Tandem: mappings, couplings, filters, transforms and the sync planner (no I/O)."""
