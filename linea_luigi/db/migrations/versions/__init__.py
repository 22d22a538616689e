"""Migration scripts, loaded by Alembic by file (this file makes them a package to install)."""
