"""Metadata database: schema, engines and transactions, version allocation."""
