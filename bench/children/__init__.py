"""Code that runs inside measurement children (``python -m bench.worker``)."""
