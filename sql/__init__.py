"""Alembic migrations of the cicfleet database (``cicfleet db upgrade`` runs them)."""
