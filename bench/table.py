"""Render sections as one markdown table, and as JSON for tests and tooling."""

from __future__ import annotations

from typing import Any

from .harness import Cell, Section

COLUMNS = ["workload", "peer", "median", "ratio", "peak RSS", "target", "met?", "notes"]


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "µs":
        return f"{value:.0f} µs" if value >= 10 else f"{value:.1f} µs"
    return f"{value:,.0f} {unit}"


def _ratio(section: Section, peer: str) -> str:
    if section.base is None:
        return "-"
    a, b = section.cells[peer].median, section.cells[section.base].median
    base = section.base.split()[0]
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x {base}"


def _median(cell: Cell) -> str:
    if cell.problem:
        return cell.problem
    return "-" if cell.median is None else fmt(cell.median, cell.unit)


def _rss(cell: Cell) -> str:
    m = cell.median_rss
    return "-" if m is None else f"{m:,.0f} MiB"


def met(section: Section) -> str:
    return section.check(section.cells) if section.check else "-"


def markdown(header: list[str], sections: list[Section]) -> str:
    lines = [*header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for s in sections:
        for i, (peer, cell) in enumerate(s.cells.items()):
            first = i == 0
            row = [
                s.label if first else "",
                peer,
                _median(cell),
                _ratio(s, peer),
                _rss(cell),
                s.target if first else "",
                met(s) if first else "",
                s.notes if first else "",
            ]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return "\n".join(lines) + "\n"


def as_json(sections: list[Section]) -> list[dict[str, Any]]:
    return [
        {
            "workload": s.workload,
            "label": s.label,
            "target": s.target,
            "met": met(s),
            "notes": s.notes,
            "cells": {
                peer: {
                    "unit": c.unit,
                    "median": c.median,
                    "values": c.values,
                    "rss_mib": c.rss_mib,
                    "problem": c.problem,
                    "extras": c.extras,
                }
                for peer, c in s.cells.items()
            },
        }
        for s in sections
    ]
