"""How a value becomes verified bytes and back: serializers, digests, progress."""
