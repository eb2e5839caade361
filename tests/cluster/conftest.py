"""The production topology on this machine (kefu.platform.devcluster): two API replicas,
two media nodes and two workers on their own PostgreSQL and Redis, one per test module
(the fault tests kill and restart parts of it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kefu.platform.devcluster import Topology

METRICS_TOKEN = "cluster-metrics-token"


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    root = tmp_path_factory.mktemp("cluster")
    cluster = Topology.start(root=root, env={"KEFU_METRICS_TOKEN": METRICS_TOKEN})
    try:
        cluster.wait_ready(*cluster.names("api"), *cluster.names("media"))  # TODO workers once they serve /health
        yield cluster
    finally:
        cluster.close()
