"""Where a node's bucketed PSI runs its buckets: its own processes, or the Ray cluster its
settings name -- and several tasks at once on one cluster connection."""

from __future__ import annotations

import operator

import pytest

from privledger.node.compute import RayExecutor, bucket_executor
from tests.ray_cluster import RayCluster


def test_without_a_cluster_the_protocol_uses_its_own_pool() -> None:
    with bucket_executor(None, 2) as executor:
        assert executor is None


@pytest.mark.ray
def test_tasks_running_at_once_share_the_process_connection(ray_cluster: RayCluster) -> None:
    """Two bucketed tasks of one node overlap: the first to finish must not disconnect the
    process from the cluster under the other (each used to call ray.shutdown() if it had
    connected), and the last one to finish does disconnect it."""
    import ray

    assert not ray.is_initialized()
    first = RayExecutor(ray_cluster.address, workers=1)
    with bucket_executor(ray_cluster.address, 1) as second:
        assert isinstance(second, RayExecutor)
        first.shutdown()  # the first task finished
        assert ray.is_initialized()
        assert second.submit(operator.mul, 6, 7).result(timeout=60) == 42
    assert not ray.is_initialized()  # the node connected, so the node disconnects
