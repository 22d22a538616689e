"""Value storage: where serialized artifact values live (any fsspec location)."""

from .fs import ValueStorage

__all__ = ["ValueStorage"]
