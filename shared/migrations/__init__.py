"""Alembic migrations, shipped inside the package and run by shared.db.upgrade()."""
