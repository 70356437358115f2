"""Fixtures for the chaos tests: a dev cluster, and kgate in front of it with any number of
virtual clusters, an optional `chaos:` list in its config file, and the admin API at hand.

Chaos needs kgate, so with KGATE_TEST_DIRECT=1 every test here is skipped.

Backends: the `cluster` fixture is parametrized per test module.
- Modules marked `pytest.mark.every_backend` (faults whose encoding depends on the protocol
  versions in play: errors injected into Produce/Fetch responses, record mutations, leadership
  errors, topic ids) run against both dev clusters, librdkafka 2.0.2 and 2.12 (flexible
  versions, Produce v10, Fetch v16, topic ids), so kgate's rewriting meets the responses of both.
- The others (rule management, scope, delays, TCP faults: the same code whatever the broker)
  run against KGATE_CHAOS_CLUSTERS (default "2.0.2"), comma-separated: 2.0.2 and/or 2.12.
"""

import pytest

from chaosgate import CHAOS_TOPICS, CLUSTER_VERSIONS, gate, gate_factory  # noqa: F401 (fixtures)
from kghelpers import DIRECT, DevCluster

EVERY_BACKEND = ["2.0.2", "2.12"]


def pytest_configure(config):
    config.addinivalue_line("markers", "every_backend: run against both the librdkafka 2.0.2 "
                            "and 2.12 dev clusters")


def pytest_generate_tests(metafunc):
    if "cluster" not in metafunc.fixturenames:
        return
    every = metafunc.definition.get_closest_marker("every_backend") is not None
    versions = EVERY_BACKEND if every else CLUSTER_VERSIONS
    metafunc.parametrize("cluster", versions, indirect=True, ids=lambda v: f"rdk{v}")


@pytest.fixture(scope="session", autouse=True)
def _private_kgate(private_kgate):
    """kgate and the 2.0.2 dev cluster run the session's private copy (conftest.py)."""
    return private_kgate


@pytest.fixture(autouse=True)
def _chaos_needs_kgate():
    if DIRECT:
        pytest.skip("chaos is done by kgate (KGATE_TEST_DIRECT=1)")


@pytest.fixture
def cluster(request, tmp_path):
    dc = DevCluster(request.param, tmp_path, topics=CHAOS_TOPICS)
    try:
        yield dc
    finally:
        dc.stop()
