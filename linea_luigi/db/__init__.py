"""Metadata database: schema, engines and transactions, version allocation."""

# Luigi's task-history tables live on the same MetaData: importing them here makes
# every ``metadata.create_all`` (db.setup) create them beside the artifact tables.
from . import history_schema as history_schema
