"""The failover tests' cluster and kgate fixtures, shared with the fleet tests
(tests/integration/fleet), which import them into their conftest.py."""

import os

import pytest

from fohelpers import DevCluster, Kgate, tail


def mark_kgate_only(items, directory):
    """Marks the tests of DIRECTORY that start a kgate kgate_only (skipped with
    KGATE_TEST_DIRECT=1)."""
    for item in items:
        if str(item.fspath).startswith(directory + os.sep) and \
                "make_kgate" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kgate_only)


@pytest.fixture(scope="session", autouse=True)
def kgate_binary(private_kgate):
    """Every kgate and CLI call of these tests runs the session's private copy (conftest.py)."""
    return private_kgate

# Topics every dev cluster of these tests has, on both sides with the same partition counts.
TOPICS = {"fo-kcat": 3, "fo-confluent": 3, "fo-kafka-python": 3, "fo-kafkajs": 3,
          "fo-platformatic": 3, "fo-rdk212": 3, "fo-runbook": 3, "fo-misc": 3, "fo-pos": 1,
          "fo-drill": 3}


@pytest.fixture
def make_clusters(tmp_path):
    """make_clusters(east="2.12", west="2.12", rebalance_delay_ms=None)
    -> {"east": DevCluster, "west": DevCluster}; rebalance_delay_ms: both mocks'
    group.initial.rebalance.delay.ms (None: the mock's 3000 ms)."""
    started = []

    def make(east="2.12", west="2.12", topics=TOPICS, rebalance_delay_ms=None):
        out = {}
        for name, version in (("east", east), ("west", west)):
            out[name] = DevCluster(name, version, topics, tmp_path,
                                   rebalance_delay_ms=rebalance_delay_ms)
            started.append(out[name])
        return out

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def make_kgate(tmp_path):
    """make_kgate(clusters, vclusters=[("default", "east", "west")], token=None, start=True)
    -> Kgate. Every kgate still running at teardown gets SIGTERM and must exit 0."""
    started = []

    def make(clusters, vclusters=(("default", "east", "west"),), start=True, **kwargs):
        work = tmp_path / f"kgate{len(started)}"
        work.mkdir()
        kg = Kgate(clusters, list(vclusters), work, **kwargs)
        started.append(kg)
        if start:
            kg.start()
        return kg

    yield make
    errors = []
    for kg in started:
        if kg.alive():
            rc = kg.stop()
            if rc != 0:
                errors.append(f"kgate exited {rc} after SIGTERM; log:\n{tail(kg.log())}")
    assert not errors, "\n".join(errors)
