"""Value storage: where serialized artifact values live (any fsspec location).

- ``fs``: ``ValueStorage``, which opens, reads, checks, deletes and lists values;
- ``layout``: what the files under a root are called, and which are ours (``gc``'s rule);
- ``writing``: publishing a value atomically, in full or not at all, on every backend;
- ``multipart``: S3 uploads streamed part by part while the value is being written;
- ``errors``: the storage's failures as one-line ``StorageError``s, credentials scrubbed.
"""

from .fs import ValueStorage

__all__ = ["ValueStorage"]
