"""The lineage neighbourhood of one version, laid out in columns for an SVG drawing.

Ancestors go left, descendants right, one column per step; a node reached
along paths of several lengths sits at the longest, so every edge points
right. Each step is one query over the frontier, and each column is capped,
so a version made from thousands of inputs still draws a readable, bounded
graph (the page says how many were left out; its lists stay complete).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ..db.schema import ARTIFACTS, LINEAGE
from ..model import Artifact

DEFAULT_DEPTH = 2
MAX_DEPTH = 6
#: most nodes drawn per column
PER_COLUMN = 24

NODE_W = 190
NODE_H = 34
GAP_X = 50
GAP_Y = 12
PAD = 16
#: room above the nodes for edges that skip columns (drawn as arcs over them)
ARC_ROOM = 40
#: characters of a label before it is cut with an ellipsis (the tooltip has it all)
LABEL_CHARS = 24

_A = ARTIFACTS.c
_L = LINEAGE.c


@dataclass(frozen=True)
class Node:
    name: str
    version: int
    #: steps from the focus: negative upstream, positive downstream
    level: int
    x: int
    y: int
    focus: bool

    @property
    def label(self) -> str:
        text = f"{self.name} v{self.version}"
        return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Edge:
    #: SVG path data from the parent's right side to the child's left side
    path: str


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    #: related versions found but not drawn (columns are capped)
    hidden: int


_Found = dict[int, tuple[str, int, int]]  # row id -> (name, version, level)


def neighbourhood(conn: Connection, focus: Artifact, depth: int) -> Layout:
    """Read ``depth`` steps of lineage each way around ``focus`` and lay it out."""
    own = select(_A.id).where(_A.name == focus.name, _A.version == focus.version)
    focus_id: int = conn.execute(own).scalar_one()
    found: _Found = {focus_id: (focus.name, focus.version, 0)}
    edges: set[tuple[int, int]] = set()  # (parent id, child id)
    hidden = 0
    for direction in (-1, 1):
        frontier = [focus_id]
        for step in range(1, depth + 1):
            if not frontier:
                break
            rows = list(conn.execute(_step(direction, frontier)))
            fresh: dict[int, tuple[str, int]] = {}
            for rid, name, version, other in rows:
                edges.add((rid, other) if direction < 0 else (other, rid))
                if rid not in found:
                    fresh[rid] = (name, version)
            ordered = sorted(fresh.items(), key=lambda item: item[1])
            hidden += max(0, len(ordered) - PER_COLUMN)
            for rid, (name, version) in ordered[:PER_COLUMN]:
                found[rid] = (name, version, direction * step)
            frontier = [rid for rid, _ in ordered[:PER_COLUMN]]
    return layout(_longest_paths(found, edges), edges, focus_id, hidden)


def _longest_paths(found: _Found, edges: set[tuple[int, int]]) -> _Found:
    """Move each node to its longest distance from the focus, so every edge points right.

    Breadth-first levels put both ends of a shortcut (A -> B -> focus and
    A -> focus) in one column; relaxing along the edges pushes A further out.
    """
    level = {rid: lvl for rid, (_, _, lvl) in found.items()}
    for _ in range(len(level)):  # a DAG settles within as many rounds as it has nodes
        changed = False
        for p, c in edges:
            if p not in level or c not in level:
                continue
            if level[p] < 0 and level[c] <= 0 and level[p] > level[c] - 1:
                level[p], changed = level[c] - 1, True
            elif level[c] > 0 and level[p] >= 0 and level[c] < level[p] + 1:
                level[c], changed = level[p] + 1, True
        if not changed:
            break
    return {rid: (name, version, level[rid]) for rid, (name, version, _) in found.items()}


def _step(direction: int, frontier: list[int]) -> Any:
    """Parents (direction -1) or children (+1) of the frontier rows, with the edge's far end."""
    near, far = (_L.child_id, _L.parent_id) if direction < 0 else (_L.parent_id, _L.child_id)
    return (
        select(_A.id, _A.name, _A.version, near)
        .join(LINEAGE, far == _A.id)
        .where(near.in_(frontier))
    )


def layout(found: _Found, edges: Iterable[tuple[int, int]], focus_id: int, hidden: int) -> Layout:
    """Columns by level, nodes sorted by (name, version) in each, centred vertically."""
    levels = sorted({level for _, _, level in found.values()})
    columns: dict[int, list[tuple[int, str, int]]] = {level: [] for level in levels}
    for rid, (name, version, level) in found.items():
        columns[level].append((rid, name, version))
    tallest = max(len(c) for c in columns.values())
    column_of = {level: i for i, level in enumerate(levels)}
    spans = [
        column_of[found[c][2]] - column_of[found[p][2]]
        for p, c in edges
        if p in found and c in found
    ]
    room = ARC_ROOM if any(span > 1 for span in spans) else 0
    height = room + PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    where: dict[int, Node] = {}
    for col, level in enumerate(levels):
        members = sorted(columns[level], key=lambda m: (m[1], m[2]))
        span = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = room + (height - room - span) // 2
        for row, (rid, name, version) in enumerate(members):
            x = PAD + col * (NODE_W + GAP_X)
            y = top + row * (NODE_H + GAP_Y)
            where[rid] = Node(name, version, level, x, y, rid == focus_id)
    drawn = [
        Edge(_curve(where[p], where[c])) for p, c in sorted(edges) if p in where and c in where
    ]
    width = PAD * 2 + len(levels) * NODE_W + (len(levels) - 1) * GAP_X
    nodes = sorted(where.values(), key=lambda n: (n.level, n.y))
    return Layout(nodes, drawn, width, height, hidden)


def _curve(parent: Node, child: Node) -> str:
    """A smooth S from the parent's right edge to the child's left edge.

    An edge that skips columns arcs over the nodes between, not through them.
    """
    x1, y1 = parent.x + NODE_W, parent.y + NODE_H // 2
    x2, y2 = child.x, child.y + NODE_H // 2
    if child.level - parent.level > 1 or x2 - x1 > GAP_X:
        lift = min(y1, y2) - NODE_H // 2 - ARC_ROOM + 4
        return f"M{x1},{y1} C{x1 + GAP_X},{lift} {x2 - GAP_X},{lift} {x2},{y2}"
    bend = GAP_X // 2
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
