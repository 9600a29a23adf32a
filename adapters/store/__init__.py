"""The coupling store: couplings with their base, sync jobs, errors (SQLAlchemy; SQLite or PostgreSQL)."""
