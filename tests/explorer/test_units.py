"""Pure parts of the explorer: references from ABI arguments, SVG charts, the graph layout."""

from __future__ import annotations

from privledger.evm.indexer import references
from privledger.explorer import charts
from privledger.explorer.graph import render_svg
from privledger.explorer.provenance import Graph, Node

ZERO = "0x" + "00" * 32
DATASET = "0x" + "ab" * 32


def test_references_name_tasks_datasets_orgs_and_accounts() -> None:
    args = {
        "taskId": 7,
        "inputs": [DATASET.upper().replace("0X", "0x"), DATASET],
        "grantIds": [ZERO, "0x" + "cd" * 32],
        "participants": [3, 1],
        "account": "0x" + "ab" * 20,
        "fee": 10,
    }
    found = references(args)
    assert ("task", "7") in found and ("dataset", DATASET) in found
    assert found.count(("dataset", DATASET)) == 1  # case-folded and de-duplicated
    assert ("grant", ZERO) not in found and ("grant", "0x" + "cd" * 32) in found
    assert ("org", "3") in found and ("org", "1") in found
    assert ("account", "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB") in found
    assert not any(kind == "fee" for kind, _ in found)


def test_charts_draw_bars_a_donut_and_say_when_there_is_no_data() -> None:
    columns = charts.stacked_columns(["10:00", "10:05"], [("ok", [1, 2]), ("failed", [0, 1])])
    assert columns.startswith("<svg") and columns.count('class="series-0"') >= 3
    bars = charts.horizontal_bars([("<b>bank</b>", 3.0)], unit=" ETH")
    assert "&lt;b&gt;bank&lt;/b&gt;" in bars and "<b>" not in bars  # labels are escaped
    assert "no data yet" in charts.donut([("settled", 0)])
    assert "no data yet" in charts.stacked_columns([], [("ok", [])])
    assert 'class="donut-total"' in charts.donut([("settled", 3), ("failed", 1)])


def test_graph_layers_follow_the_edges() -> None:
    graph = Graph()
    for key, kind in (("dataset:a", "dataset"), ("task:1", "task"), ("result:1:1", "result")):
        graph.nodes[key] = Node(key, kind, key, "<detail>", f"/x/{key}")
    graph.add_edge("dataset:a", "task:1", "input")
    graph.add_edge("task:1", "result:1:1", "result")
    graph.add_edge("task:1", "missing", "result")  # ignored: not a node
    assert len(graph.edges) == 2
    svg = render_svg(graph)
    assert svg.count('class="edge') == 2 and "&lt;detail&gt;" in svg
    positions = {
        key: int(svg.split(f'data-key="{key}"')[1].split('x="')[1].split('"')[0])
        for key in graph.nodes
    }
    assert positions["dataset:a"] < positions["task:1"] < positions["result:1:1"]
    assert render_svg(Graph()) == ""
