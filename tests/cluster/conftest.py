"""The production topology on this machine (kefu.platform.devcluster): two API replicas,
two media nodes and two workers on their own PostgreSQL and Redis, one per test module
(the fault tests kill and restart parts of it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_support import METRICS_TOKEN

from kefu.platform.devcluster import Topology


@pytest.fixture(scope="module")
def topology(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The module's topology; a module adds settings with ``TOPOLOGY_ENV``."""
    root = tmp_path_factory.mktemp("cluster")
    env = {"KEFU_METRICS_TOKEN": METRICS_TOKEN, **getattr(request.module, "TOPOLOGY_ENV", {})}
    cluster = Topology.start(root=root, env=env)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()
