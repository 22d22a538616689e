"""Statements the store, gc and the browser share, one module per table family."""
