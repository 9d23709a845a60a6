"""Alembic migrations for the store, run programmatically by `gs_engine.store.migrate`."""
