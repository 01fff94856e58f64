"""Layout of a version's lineage graph, drawn by the page as server-side SVG (no script needed).

The registry answers ``lineage(ref)`` with the version, its chain of bases up to the first import, and
the refs of the versions derived from it directly. The graph shows that chain above the version and the
versions derived from it below, following ``derived`` down a few generations (``fetch`` reads each
derived version's own node). Every version has at most one base, so what is drawn is a tree: ancestors in
a column above the version, descendants laid out as a tidy tree below it, each parent centred over its
children. Coordinates are plain numbers for the template; nothing here writes markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from urllib.parse import quote

from llmops.registry.schemas import LineageNode

NODE_WIDTH = 210
NODE_HEIGHT = 46
SLOT_WIDTH = 232  # horizontal room per leaf of the derived tree
LAYER_HEIGHT = 96  # vertical distance between generations
PAD = 14
MAX_DEPTH = 4  # generations of derived versions followed below the version
MAX_NODES = 60  # derived versions drawn at most; the rest are counted, not drawn
LABEL_CHARS = 26


@dataclass
class GraphNode:
    ref: str
    derivation: str
    run_id: str | None
    datasets: list[str]
    role: str  # "ancestor", "current" or "derived"
    href: str
    label: str
    x: float = 0.0
    y: float = 0.0
    children: list[GraphNode] = field(default_factory=list)

    @property
    def cx(self) -> float:
        return self.x + NODE_WIDTH / 2


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    d: str  # SVG path data, from the bottom of the base to the top of the derived version


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    hidden: int  # derived versions beyond MAX_DEPTH or MAX_NODES, not drawn


def version_href(ref: str) -> str:
    """``name:3`` → ``/models/name/3``."""
    name, _, version = ref.rpartition(":")
    return f"/models/{quote(name, safe='')}/{quote(version, safe='')}"


def _label(ref: str) -> str:
    return ref if len(ref) <= LABEL_CHARS else ref[: LABEL_CHARS - 1] + "…"


def _node(source: LineageNode, role: str) -> GraphNode:
    return GraphNode(
        ref=source.ref,
        derivation=source.derivation,
        run_id=source.run_id,
        datasets=list(source.datasets),
        role=role,
        href=version_href(source.ref),
        label=_label(source.ref),
    )


def build(root: LineageNode, fetch: Callable[[str], LineageNode]) -> Graph:
    """Lay out ``root``'s lineage: bases above it, derived versions (read with ``fetch``) below."""
    ancestors: list[GraphNode] = []
    base = root.base
    while base is not None:
        ancestors.append(_node(base, "ancestor"))
        base = base.base
    ancestors.reverse()
    current = _node(root, "current")
    seen = {current.ref, *(a.ref for a in ancestors)}

    # Breadth first, so that when the cap is reached the nearest generations are the ones drawn.
    hidden = 0
    drawn = 0
    frontier: list[tuple[GraphNode, LineageNode, int]] = [(current, root, 0)]
    while frontier:
        parent, source, depth = frontier.pop(0)
        for ref in source.derived:
            if ref in seen:
                continue
            if depth >= MAX_DEPTH or drawn >= MAX_NODES:
                hidden += 1
                continue
            seen.add(ref)
            child_source = fetch(ref)
            child = _node(child_source, "derived")
            parent.children.append(child)
            drawn += 1
            frontier.append((child, child_source, depth + 1))

    def leaves(node: GraphNode) -> int:
        return max(1, sum(leaves(c) for c in node.children))

    def place(node: GraphNode, first_slot: float, layer: int) -> None:
        span = leaves(node)
        node.x = PAD + (first_slot + span / 2) * SLOT_WIDTH - NODE_WIDTH / 2
        node.y = PAD + layer * LAYER_HEIGHT
        slot = first_slot
        for child in node.children:
            place(child, slot, layer + 1)
            slot += leaves(child)

    place(current, 0, len(ancestors))
    for layer, ancestor in enumerate(ancestors):
        ancestor.x, ancestor.y = current.x, PAD + layer * LAYER_HEIGHT

    nodes = [*ancestors]
    edges = [_edge(a, b) for a, b in pairwise([*ancestors, current])]
    stack = [current]
    while stack:
        node = stack.pop(0)
        nodes.append(node)
        for child in node.children:
            edges.append(_edge(node, child))
            stack.append(child)
    width = int(2 * PAD + leaves(current) * SLOT_WIDTH)
    height = int(max(n.y for n in nodes) + NODE_HEIGHT + PAD)
    return Graph(width=width, height=height, nodes=nodes, edges=edges, hidden=hidden)


def _edge(source: GraphNode, target: GraphNode) -> GraphEdge:
    x1, y1 = source.cx, source.y + NODE_HEIGHT
    x2, y2 = target.cx, target.y - 2  # stop short of the box: the arrowhead ends on its border
    mid = (y1 + y2) / 2
    d = f"M{x1:g},{y1:g} C{x1:g},{mid:g} {x2:g},{mid:g} {x2:g},{y2:g}"
    return GraphEdge(source=source.ref, target=target.ref, d=d)
