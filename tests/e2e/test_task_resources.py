"""Resource figures on task pages (issue 22, item 5): after a PSI task between two node processes,
each participant's node shows the CPU seconds, peak memory and bytes of its own part in its API's
task answer, on its explorer's task page and that page's JSON twin and in its audit log, and sums
them in its cockpit; what one party sent the other received."""

from __future__ import annotations

import re
from typing import Any

import httpx

from privledger.evm.accounts import dev_account

from .conftest import Running, wait_until
from .test_explorer import REGULATOR, login
from .test_walking_path import grant, submit, wait_status

PARTIES = ("telecom", "bank-a")  # the requester, the provider


def _figures_on_page(html: str) -> dict[str, str]:
    """The resource cells of a task page, by field: the text shown, or the exact bytes."""
    section = html[html.index('id="resources"') :]
    section = section[: section.index("</section>")]
    cells = re.findall(r'data-field="(\w+)"(?: data-bytes="(\d+)")?>([^<]*)<', section)
    return {name: exact or shown for name, exact, shown in cells}


def _audited(running: Running, org: str, task_id: int) -> list[str]:
    """The outcomes of ``org``'s resource_usage audit entries for the task, once there is one
    (written when the node's last frames are confirmed: maybe just after the settlement)."""
    query = {"action": "resource_usage", "taskId": task_id}
    with running.client(org, "data_owner") as owner:
        wait_until(lambda: owner.get("/audit", params=query).json(), f"{org}'s audit entry")
        return [entry["outcome"] for entry in owner.get("/audit", params=query).json()]


def test_each_participant_shows_the_resources_of_its_part(running: Running) -> None:
    mine = running.register("telecom")
    theirs = running.register("bank-a")
    grant(running, "bank-a", theirs, "telecom")
    task_id = submit(running, mine, theirs)["taskId"]
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task_id, {"settled", "failed"})
    assert final["status"] == "settled", final

    parts: dict[str, dict[str, Any]] = {}
    for org in PARTIES:
        with running.client(org, "operator") as client:
            answer = client.get(f"/tasks/{task_id}").json()
        resources = answer["localResources"]
        assert resources is not None, (org, answer)
        assert resources["cpuSeconds"] > 0 and resources["peakRssBytes"] > 16 << 20
        assert resources["bytesSent"] == answer["localBytesSent"] > 0
        assert resources["bytesReceived"] > 0
        parts[org] = resources
        assert _audited(running, org, task_id) == [  # and in its audit log, anchored
            f"cpu_seconds={resources['cpuSeconds']:.6f} peak_rss_bytes={resources['peakRssBytes']}"
            f" bytes_sent={resources['bytesSent']} bytes_received={resources['bytesReceived']}"
            f" shared={str(resources['shared']).lower()}"
        ]

        node = running.nodes[org]
        with httpx.Client(base_url=node.url, timeout=60) as auditor:
            assert login(auditor, dev_account(REGULATOR)).status_code == 200
            twin = auditor.get(f"/explorer/api/tasks/{task_id}").json()["resources"]
            assert twin == {
                "org_id": running.org_ids[org],
                "cpu_seconds": resources["cpuSeconds"],
                "peak_rss_bytes": resources["peakRssBytes"],
                "bytes_sent": resources["bytesSent"],
                "bytes_received": resources["bytesReceived"],
                "shared": resources["shared"],
            }
            page = auditor.get(f"/explorer/tasks/{task_id}")
            assert page.status_code == 200
            shown = _figures_on_page(page.text)
            assert shown["cpu_seconds"] == f"{twin['cpu_seconds']:.3f} s"
            for field in ("peak_rss_bytes", "bytes_sent", "bytes_received"):
                assert int(shown[field]) == twin[field], field
            totals = auditor.get("/explorer/api/cockpit").json()["resources"]
            assert totals["tasks"] >= 1 and totals["cpu_seconds"] >= twin["cpu_seconds"]
            assert totals["bytes_sent"] >= twin["bytes_sent"]
            assert totals["bytes_received"] >= twin["bytes_received"]
            assert totals["peak_rss_bytes"] >= twin["peak_rss_bytes"]
            cockpit = auditor.get("/explorer/cockpit")
            assert cockpit.status_code == 200 and 'data-field="cpu_seconds"' in cockpit.text

    # payload bytes: the transcripts agree, so each saw exactly the messages the other sent
    requester, provider = (parts[org] for org in PARTIES)
    assert requester["bytesSent"] == provider["bytesReceived"]
    assert provider["bytesSent"] == requester["bytesReceived"]
