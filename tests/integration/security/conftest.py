"""Fixtures of the security tests (issue 8, SASL at kgate): a dev cluster (librdkafka 2.0.2's
mock: the SASL exchange ends at kgate, so the broker's protocol versions do not matter) and kgates
in front of it whose virtual cluster has `auth: gateway`. SASL is done by kgate, so with
KGATE_TEST_DIRECT=1 every test here is skipped."""

import pytest

from kghelpers import DIRECT, DevCluster, stop_all
from secgate import SECURITY_TOPICS, SaslGate


@pytest.fixture(scope="session", autouse=True)
def _private_kgate(private_kgate):
    """kgate and the dev cluster run the session's private copy (../conftest.py)."""
    return private_kgate


@pytest.fixture(autouse=True)
def _sasl_needs_kgate():
    if DIRECT:
        pytest.skip("SASL at kgate needs kgate (KGATE_TEST_DIRECT=1)")


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(name="east") -> a running 2.0.2 dev cluster, stopped at teardown."""
    started = []

    def make(name="east"):
        dc = DevCluster("2.0.2", tmp_path, SECURITY_TOPICS, brokers=3, name=name)
        started.append(dc)
        return dc

    yield make
    stop_all(started)


@pytest.fixture
def cluster(make_cluster):
    return make_cluster()


@pytest.fixture
def make_gate(tmp_path):
    """make_gate(clusters, **options) -> SaslGate (see secgate.py); stopped (exit 0 asserted)."""
    started = []

    def make(clusters, **kwargs):
        work = tmp_path / f"kgate{len(started)}"
        work.mkdir()
        g = SaslGate(clusters, work, **kwargs)
        started.append(g)
        return g

    yield make
    stop_all(started)


@pytest.fixture
def gate(make_gate, cluster):
    """kgate with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, and the users alice and bob (both
    mechanisms each)."""
    g = make_gate({"east": cluster})
    for user, pw in (("alice", "alice-secret"), ("bob", "bob-secret")):
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            g.cli("add", user, "--mechanism", mech, "--password-stdin", input=pw + "\n")
    return g
