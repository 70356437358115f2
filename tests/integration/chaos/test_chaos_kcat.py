"""kcat (Debian's, librdkafka 2.0.2) through kgate with chaos: what a shell user sees."""

import collections

import pytest

from chaoslib import produce_ok, producer, values
from kghelpers import run

# Error responses and record batches rewritten per protocol version: run against both the
# 2.0.2 and the 2.12 broker (conftest.py).
pytestmark = pytest.mark.every_backend

KCAT = ["-X", "broker.address.family=v4", "-X", "socket.timeout.ms=10000"]


def kcat_produce(bootstrap, topic, lines, client_id="kcat-writer"):
    return run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", f"client.id={client_id}",
                "-X", "message.send.max.retries=0", "-X", "message.timeout.ms=20000"] + KCAT,
               timeout=60, input=b"\n".join(lines) + b"\n", check=False)


def kcat_consume(bootstrap, topic, count, client_id="kcat-reader"):
    cp = run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", str(count),
              "-e", "-q", "-f", "%p %o %s\n", "-X", f"client.id={client_id}"] + KCAT, timeout=60)
    return [tuple(line.split(b" ", 2)) for line in cp.stdout.splitlines()]


def test_kcat_producer_reports_the_injected_error(gate, cluster):
    gate.add({"type": "broken-brokers", "topic": "a1",
              "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    cp = kcat_produce(gate.bootstrap, "a1", values("k", 3))
    err = cp.stderr.decode()
    assert cp.returncode != 0, err
    assert err.count("Not enough in-sync replicas") == 3, err
    ok = kcat_produce(gate.bootstrap, "b1", values("k", 3))
    assert ok.returncode == 0, ok.stderr.decode()


def test_kcat_consumer_sees_duplicates(gate, cluster):
    sent = values("kd", 10)
    produce_ok(producer(cluster.bootstrap), "a1", sent)
    gate.add({"type": "duplicate-records", "topic": "a1"})
    records = kcat_consume(gate.bootstrap, "a1", 20)
    counts = collections.Counter(records)
    # Each record twice, at the same offset.
    assert counts == {(b"0", b"%d" % i, v): 2 for i, v in enumerate(sent)}, records
