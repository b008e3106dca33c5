"""Draws a provenance graph as an SVG picture: nodes in columns by their longest path from a
source (layered drawing), ordered within a column by the mean position of their predecessors so
edges cross less, edges as curves from left to right. Pure: a ``Graph`` in, SVG text out."""

from __future__ import annotations

from html import escape

from .provenance import Graph

NODE_W, NODE_H = 210, 46
COL_GAP, ROW_GAP, MARGIN = 80, 18, 12
SWEEPS = 4


def _layers(graph: Graph) -> list[list[str]]:
    preds: dict[str, list[str]] = {key: [] for key in graph.nodes}
    for edge in graph.edges:
        preds[edge.target].append(edge.source)
    depth: dict[str, int] = {}

    def level(key: str, seen: frozenset[str]) -> int:
        if key not in depth:
            depth[key] = 1 + max(
                (level(p, seen | {key}) for p in preds[key] if p not in seen), default=-1
            )
        return depth[key]

    for key in graph.nodes:
        level(key, frozenset())
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key in graph.nodes:  # insertion order: a stable first guess
        layers[depth[key]].append(key)
    for _ in range(SWEEPS):
        position = {key: i for layer in layers for i, key in enumerate(layer)}
        for layer in layers[1:]:
            layer.sort(
                key=lambda k: (
                    sum(position[p] for p in preds[k]) / len(preds[k]) if preds[k] else position[k]
                )
            )
            position.update({key: i for i, key in enumerate(layer)})
    return layers


def _text(value: str, limit: int = 30) -> str:
    return escape(value if len(value) <= limit else value[: limit - 1] + "…")


def render_svg(graph: Graph, *, label: str = "provenance graph") -> str:
    """The graph as an ``<svg>`` element; every node links to its explorer page."""
    if not graph.nodes:
        return ""
    layers = _layers(graph)
    rows = max(len(layer) for layer in layers)
    width = MARGIN * 2 + len(layers) * NODE_W + (len(layers) - 1) * COL_GAP
    height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP
    place: dict[str, tuple[int, int]] = {}
    for column, layer in enumerate(layers):
        offset = (rows - len(layer)) * (NODE_H + ROW_GAP) // 2  # centre short columns
        for row, key in enumerate(layer):
            place[key] = (
                MARGIN + column * (NODE_W + COL_GAP),
                MARGIN + offset + row * (NODE_H + ROW_GAP),
            )
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for edge in graph.edges:
        (x1, y1), (x2, y2) = place[edge.source], place[edge.target]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        bend = max(30, (tx - sx) // 2)
        parts.append(
            f'<path class="edge {edge.kind}" marker-end="url(#arrow)" '
            f'd="M{sx},{sy} C{sx + bend},{sy} {tx - bend},{ty} {tx - 2},{ty}"/>'
        )
    for key, node in graph.nodes.items():
        x, y = place[key]
        parts.append(
            f'<a href="{escape(node.url)}" class="node {node.kind} {escape(node.state)}" '
            f'data-key="{escape(key)}"><title>{escape(node.label)}: {escape(node.detail)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text x="{x + 10}" y="{y + 19}" class="label">{_text(node.label)}</text>'
            f'<text x="{x + 10}" y="{y + 36}" class="detail">{_text(node.detail, 34)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
