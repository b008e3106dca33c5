"""With 10^5 indexed transactions every list, search and detail page of the explorer answers in
at most 200 ms: the fastest of five requests after a warm-up, since other work on a shared machine
only ever adds time (the median is printed too)."""

from __future__ import annotations

import statistics
import time

import pytest

from .conftest import Explorer

BUDGET_MS = 200.0
# requests per page, the fastest compared with the budget: the suite's idle consortia (session
# fixtures) tick in the background, and in one CI run the fastest of 5 took a PostgreSQL page to
# 215 ms that takes 116 ms alone
SAMPLES = 9


def pages(big: Explorer) -> list[str]:
    seed = big.seed
    middle = len(seed.txs) // 2
    task = seed.tasks // 2
    sender = seed.txs[middle]["sender"]
    return [
        "/explorer",
        "/explorer/blocks",
        f"/explorer/blocks?before={middle}",
        "/explorer/blocks?before=3",
        f"/explorer/blocks/{middle}",
        "/explorer/txs",
        f"/explorer/txs?before={middle}.0",
        f"/explorer/txs/{seed.txs[middle]['hash']}",
        "/explorer/tasks",
        f"/explorer/tasks?page={seed.tasks // 50}",
        "/explorer/datasets",
        f"/explorer/datasets/{seed.datasets[len(seed.datasets) // 2]}",
        "/explorer/orgs",
        "/explorer/orgs/3",
        "/explorer/accounts",
        f"/explorer/accounts/{sender}",
        f"/explorer/accounts/{sender}?before={middle}.0",
        "/explorer/settlements",
        f"/explorer/settlements?page={seed.tasks // 60}",
        "/explorer/batches",
        "/explorer/batches/7",
        f"/explorer/search?q={task}",
        f"/explorer/search?q={seed.txs[middle]['hash']}",
        f"/explorer/search?q={sender}",
        f"/explorer/search?q={seed.datasets[3]}",
        "/explorer/search?q=bank",
        "/explorer/provenance",
        f"/explorer/provenance?task={task}",
        f"/explorer/provenance?dataset={seed.datasets[5]}",
        "/explorer/api/blocks",
        "/explorer/api/txs",
        "/explorer/api/tasks",
        f"/explorer/api/search?q={task}",
    ]


def test_the_index_holds_ten_to_the_five_transactions(big: Explorer) -> None:
    overview = big.client.get("/explorer")
    assert overview.status_code == 200
    assert "100,000" in overview.text  # transactions indexed


@pytest.mark.slow
def test_every_page_answers_within_200_ms(big: Explorer) -> None:
    timings, medians = {}, {}
    for path in pages(big):
        response = big.client.get(path, follow_redirects=False)
        assert response.status_code in (200, 303), (path, response.text[:300])
        samples = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            big.client.get(path, follow_redirects=False)
            samples.append((time.perf_counter() - started) * 1000)
        timings[path] = min(samples)
        medians[path] = statistics.median(samples)
    print(f"\nexplorer page times with 10^5 transactions (fastest / median of {SAMPLES}, ms):")
    for path, ms in sorted(timings.items(), key=lambda item: -item[1]):
        print(f"  {ms:7.1f} / {medians[path]:7.1f}  {path[:100]}")
    slow = {path: round(ms, 1) for path, ms in timings.items() if ms > BUDGET_MS}
    assert not slow, f"pages over {BUDGET_MS} ms: {slow}"


def test_cockpit_numbers_over_the_big_index(big: Explorer) -> None:
    started = time.perf_counter()
    snapshot = big.client.get("/explorer/api/cockpit").json()
    first_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    assert big.client.get("/explorer/api/cockpit").status_code == 200
    cached_ms = (time.perf_counter() - started) * 1000
    print(f"\ncockpit JSON: {first_ms:.0f} ms computed, {cached_ms:.0f} ms from the cache")
    assert snapshot["tasks_total"] == big.seed.tasks
    outcomes = snapshot["outcomes"]
    assert sum(outcomes.values()) == big.seed.tasks
    assert outcomes["failed"] == sum(1 for t in range(1, big.seed.tasks + 1) if t % 10 == 7)
    assert sum(sum(snapshot["over_time"][name]) for name in outcomes) == big.seed.tasks
    assert dict(snapshot["by_kind"]) == {"psi": big.seed.tasks}
    assert dict(snapshot["by_org"]) == {"telecom": big.seed.tasks}
    assert snapshot["fees_by_org"][0][0] == "bank-a"
    assert all(snapshot["charts"][name].startswith("<svg") for name in snapshot["charts"])
    assert cached_ms < BUDGET_MS
