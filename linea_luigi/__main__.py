"""``python -m linea_luigi``: the command line (see ``cli``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
