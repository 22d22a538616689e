"""Metadata database: schema, engines and transactions, version allocation."""

# Luigi's task-history tables live on the same MetaData: importing them here registers
# them wherever the schema is used, so the check that the migrations match the models
# (autogenerate) and the store's joins of artifacts to runs always see them.
from . import history_schema as history_schema
