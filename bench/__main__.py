"""``python -m bench``: run the workloads and print one markdown table.

Options: ``--size tiny|full``, ``--only dag,array,...``, ``--reps N`` (default 3),
``--out FILE`` (also write the table), ``--json FILE`` (structured results),
``--drop-caches`` (drop the page cache before each load; needs root).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .harness import Context, Section, progress
from .machine import header
from .sizes import SIZES
from .table import as_json, markdown
from .workloads import WORKLOADS

#: scratch folders go next to the checkout: this machine's /tmp creates small files ~15x
#: slower than the rest of the same disk (measured in bench/RESULTS.md), which would
#: measure the sandbox, not the peers
SCRATCH = Path(__file__).resolve().parents[1] / ".bench-tmp"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--reps", type=int, default=3, help="repetitions per peer (median)")
    p.add_argument("--out", type=Path, help="also write the table (markdown) here")
    p.add_argument("--json", type=Path, help="write structured results here")
    p.add_argument(
        "--tmp",
        type=Path,
        default=SCRATCH,
        help="scratch base (default: .bench-tmp in the checkout, on the disk pipelines use)",
    )
    p.add_argument("--drop-caches", action="store_true", help="cold page cache for loads")
    args = p.parse_args(argv)
    chosen = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown:
        p.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.drop_caches and not _writable(Path("/proc/sys/vm/drop_caches")):
        p.error("--drop-caches needs a writable /proc/sys/vm/drop_caches (root)")
    args.only = chosen
    return args


def _writable(path: Path) -> bool:
    try:
        with path.open("a"):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.tmp.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ll-bench-", dir=args.tmp))
    started = time.perf_counter()
    started_at = dt.datetime.now().astimezone()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        for sub in ("home", "cwd"):
            (root / sub).mkdir()
        (root / "luigi.cfg").write_text("")
        ctx = Context(
            sizes=SIZES[args.size],
            reps=args.reps,
            root=root,
            drop_caches=args.drop_caches,
            gokart=importlib.util.find_spec("gokart") is not None,
        )
        info = {**ctx.child("info:describe"), "load": load}
        progress(f"measuring {info['linea_file']}")
        sections: list[Section] = []
        for name in args.only:
            sections += WORKLOADS[name](ctx)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    lines = header(info, args.size, args.reps, started_at)
    lines.append(f"- wall time of this run: {minutes:.1f} min")
    table = markdown(lines, sections)
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    if args.json:
        args.json.write_text(json.dumps(as_json(sections), indent=1, ensure_ascii=False))
    for failure in ctx.failures:
        progress(f"FAILED: {failure}")
    return 1 if ctx.failures else 0


if __name__ == "__main__":
    sys.exit(main())
