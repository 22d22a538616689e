"""Child entry point: ``python -m bench.worker MODULE:FUNCTION JSON_KWARGS``.

Imports ``bench.children.MODULE``, calls ``FUNCTION(**kwargs)`` and prints its
JSON-able result on one stdout line prefixed with ``RESULT_MARK``. Only the
function's own timed region is measured; imports happen before it.
"""

from __future__ import annotations

import importlib
import json
import sys

RESULT_MARK = "@@BENCH_RESULT@@ "


def main(argv: list[str]) -> None:
    target, raw_kwargs = argv
    module_name, func_name = target.split(":")
    module = importlib.import_module(f"bench.children.{module_name}")
    result = getattr(module, func_name)(**json.loads(raw_kwargs))
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
