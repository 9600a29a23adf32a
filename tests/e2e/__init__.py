"""The `tandem` command end to end."""
