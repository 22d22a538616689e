"""Benchmark suite for linea_luigi: ``python -m bench`` prints one comparison table.

The parent process (``bench.__main__``) never imports ``linea_luigi``: every
measurement runs in a fresh child (``python -m bench.worker``) whose ``sys.path``
puts ``PYTHONPATH`` first, so ``PYTHONPATH=/other/checkout python -m bench``
measures that checkout's code.
"""
