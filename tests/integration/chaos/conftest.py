"""Fixtures for the chaos tests: a dev cluster, and kgate in front of it with any number of
virtual clusters, an optional `chaos:` list in its config file, and the admin API at hand.

Chaos needs kgate, so with KGATE_TEST_DIRECT=1 every test here is skipped.

KGATE_CHAOS_CLUSTERS (default "2.0.2") chooses the dev cluster builds the tests run against,
comma-separated: 2.0.2 and/or 2.12.
"""

import pytest

import chaosgate
from chaosgate import CHAOS_TOPICS, CLUSTER_VERSIONS, DIRECT, ChaosGate, DevCluster


@pytest.fixture(scope="session", autouse=True)
def _private_kgate(tmp_path_factory):
    if not DIRECT:
        chaosgate.private_kgate(tmp_path_factory.mktemp("chaos-bin"))


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


@pytest.fixture
def gate_factory(cluster, tmp_path):
    started = []

    def start(**kwargs):
        sub = tmp_path / f"gate{len(started)}"
        sub.mkdir()
        g = ChaosGate(cluster, sub, **kwargs)
        started.append(g)
        return g

    yield start
    errors = []
    for g in started:
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def gate(gate_factory):
    return gate_factory()
