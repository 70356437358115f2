"""Fixtures for the chaos tests: a dev cluster, and kgate in front of it with any number of
virtual clusters, an optional `chaos:` list in its config file, and the admin API at hand.

Chaos needs kgate, so with KGATE_TEST_DIRECT=1 every test here is skipped.

KGATE_CHAOS_CLUSTERS (default "2.0.2") chooses the dev cluster builds the tests run against,
comma-separated: 2.0.2 and/or 2.12.
"""

import pytest

from chaosgate import CHAOS_TOPICS, CLUSTER_VERSIONS, gate, gate_factory  # noqa: F401 (fixtures)
from kghelpers import DIRECT, DevCluster


@pytest.fixture(scope="session", autouse=True)
def _private_kgate(private_kgate):
    """kgate and the 2.0.2 dev cluster run the session's private copy (conftest.py)."""
    return private_kgate


@pytest.fixture(autouse=True)
def _chaos_needs_kgate():
    if DIRECT:
        pytest.skip("chaos is done by kgate (KGATE_TEST_DIRECT=1)")


@pytest.fixture(params=CLUSTER_VERSIONS, ids=lambda v: f"rdk{v}")
def cluster(request, tmp_path):
    dc = DevCluster(request.param, tmp_path, topics=CHAOS_TOPICS)
    try:
        yield dc
    finally:
        dc.stop()
