"""Independent digests of stored bytes, to check what the store records."""

from __future__ import annotations

import hashlib

import blake3


def digest_of(data: bytes, algorithm: str = "blake3") -> str:
    """``"<algorithm>:<hex>"`` of ``data``, computed in one go (no streaming, no threads)."""
    if algorithm == "blake3":
        return f"blake3:{blake3.blake3(data).hexdigest()}"
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
