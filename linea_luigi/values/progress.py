"""Progress of large saves and loads, shown only to a person watching.

A 2 GiB save or load takes seconds; in a terminal or notebook a line with the
bytes done and the throughput tells the user it is working. Anywhere else
(scripts, Luigi workers whose stderr goes to a log) nothing is printed: the
line is meant for eyes, not logs. The command line turns it on for its own
``get`` when stderr is a terminal (``force``).

Cost on the hot path when off: one ``None`` check per 8 MiB chunk.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..model import human_size

#: values smaller than this never show a line: they finish before it could help
THRESHOLD = 64 * 1024 * 1024
_REFRESH_S = 0.25

_forced: bool | None = None


def force(on: bool | None) -> None:
    """Show (True) or hide (False) progress regardless of the session; None: decide."""
    global _forced
    _forced = on


def _interactive() -> bool:
    """An interactive Python or a notebook kernel, with a place a person reads."""
    if "ipykernel" in sys.modules:
        return True
    if not (hasattr(sys, "ps1") or sys.flags.interactive):
        return False
    stream = sys.stderr
    return stream is not None and stream.isatty()


def start(label: str, total: int | None) -> Progress | None:
    """A progress line for ``label``, or None when nobody is watching."""
    on = _forced if _forced is not None else _interactive()
    if not on or (total is not None and total < THRESHOLD):
        return None
    return Progress(label, total, sys.stderr)


class Progress:
    """One self-overwriting line: done / total, percent, throughput."""

    def __init__(self, label: str, total: int | None, stream: TextIO) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream
        self._started = time.monotonic()
        self._shown_at = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= THRESHOLD and now - self._shown_at >= _REFRESH_S:
            self._shown_at = now
            self._render(now)

    def close(self) -> None:
        """Finish the line (if one was shown)."""
        if self._shown_at:
            self._render(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _render(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-6)
        done = human_size(int(self.done))
        if self.total:
            shown = f"{done} / {human_size(int(self.total))} ({100 * self.done // self.total}%)"
        else:
            shown = done
        self._stream.write(f"\r{self.label}: {shown}, {human_size(int(rate))}/s   ")
        self._stream.flush()
