"""Operations: a node's /metrics, scraped by an operator after a PSI between two nodes, and the
task's id on the log lines of both nodes that ran it."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .conftest import Running, log_mark, submit_as
from .test_walking_path import grant, wait_status


def _scrape(running: Running, org: str) -> list[Sample]:
    node = running.nodes[org]
    with node.client("operator") as client:
        response = client.get(f"{node.url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert found, f"no {name} {labels}"
    return sum(found)


def test_metrics_need_an_operator_token(running: Running) -> None:
    node = running.nodes["telecom"]
    with node.client("data_owner") as client:
        anonymous = client.get(f"{node.url}/metrics", headers={"Authorization": ""})
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"]["code"] == "unauthorized"
        owner = client.get(f"{node.url}/metrics")
        assert owner.status_code == 403 and owner.json()["error"]["code"] == "forbidden"
    with node.client("operator") as client:  # not part of the API's schema
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_a_task_shows_in_both_nodes_metrics_and_logs(running: Running) -> None:
    marks = {org: log_mark(running.nodes[org]) for org in ("telecom", "bank-a")}
    telecom, bank = running.register("telecom"), running.register("bank-a")
    grant(running, "bank-a", bank, "telecom")
    task_id = submit_as(running, "telecom", telecom, bank)["taskId"]
    for org in ("telecom", "bank-a"):
        with running.client(org, "operator") as client:
            assert wait_status(client, task_id, {"settled", "failed"})["status"] == "settled"

    for org in ("telecom", "bank-a"):
        samples = _scrape(running, org)
        psi = {"kind": "psi", "protocol": "ecdh"}
        assert _value(samples, "privledger_task_runs_total", kind="psi", outcome="anchored") >= 1
        assert _value(samples, "privledger_protocol_seconds_count", **psi) >= 1
        assert _value(samples, "privledger_protocol_seconds_sum", **psi) > 0
        assert _value(samples, "privledger_wire_bytes_sent_total", **psi) > 0
        assert _value(samples, "privledger_chain_rpc_seconds_count") > 0
        assert _value(samples, "privledger_chain_confirmation_seconds_count") >= 1
        assert _value(samples, "privledger_tasks") >= 1  # by this node's state of them
        head = _value(samples, "privledger_chain_head_block")
        lag = _value(samples, "privledger_indexer_lag_blocks")
        assert 0 <= lag <= head and _value(samples, "privledger_indexed_block") == head - lag
        assert _value(samples, "privledger_worker_tasks", queue="busy") >= 0
        assert _value(samples, "privledger_tasks_running", kind="psi") >= 0
        assert _value(samples, "process_resident_memory_bytes") > 0
        # numbers, not task details: no label names a task, a dataset or an organisation
        assert {name for s in samples for name in s.labels} <= {
            "kind",
            "protocol",
            "outcome",
            "state",
            "queue",
            "method",
            "le",
        }

        dashboard = running.settings.project_root / "docs" / "grafana" / "privledger-node.json"
        queried = {
            name
            for panel in json.loads(dashboard.read_text())["panels"]
            for target in panel["targets"]
            for name in re.findall(r"\b(?:privledger|process)_\w+", target["expr"])
        }
        assert queried and queried <= {s.name for s in samples}  # the dashboard's metrics exist

        node = running.nodes[org]
        with node.log_path.open("rb") as log:
            log.seek(marks[org])
            tagged = [
                line
                for line in log.read().decode(errors="replace").splitlines()
                if f" task={task_id}: " in line
            ]
        assert any("starts as" in line for line in tagged), (org, tagged)
        # the frame sender's thread too (httpx logs its stream's end at INFO; nodes run with -v)
        assert any("/peer/frames" in line for line in tagged), (org, tagged)
