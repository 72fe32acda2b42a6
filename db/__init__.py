"""Persistence: SQLAlchemy models, Alembic migrations, the engine and the demo data set."""
