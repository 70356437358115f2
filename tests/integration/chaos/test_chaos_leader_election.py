"""leader-election: partition-level requests answered with leadership errors. Clients see the
error (without retries) or stall and retry (with them), and recover once the rule is gone."""

import collections

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError as KafkaError_
from kafka.errors import LeaderNotAvailableError, NotLeaderForPartitionError

from chaoslib import consume_until, injected_at_least, produce_ok, producer, read_topic, values
from kghelpers import wait_for

# Error responses and record batches rewritten per protocol version: run against both the
# 2.0.2 and the 2.12 broker (conftest.py).
pytestmark = pytest.mark.every_backend


def kafka_python_send(bootstrap, topic, value, client_id="kpy-strict"):
    """kafka-python with retries=0 hands the broker's partition error to the application as
    is (librdkafka retries leadership errors regardless of its retry budget)."""
    p = KafkaProducer(bootstrap_servers=bootstrap, retries=0, acks="all", client_id=client_id,
                      request_timeout_ms=15000, api_version_auto_timeout_ms=10000)
    try:
        try:
            p.send(topic, value).get(timeout=30)
            return None
        except KafkaError_ as e:
            return e
    finally:
        p.close(10)


def test_producer_without_retries_sees_the_leadership_error(gate, cluster):
    rule = gate.add({"type": "leader-election", "topic": "a6",
                     "errors": ["NOT_LEADER_OR_FOLLOWER"]})
    err = kafka_python_send(gate.bootstrap, "a6", b"v")
    assert isinstance(err, NotLeaderForPartitionError), repr(err)
    assert kafka_python_send(gate.bootstrap, "b6", b"v") is None
    assert gate.injected(rule["id"]) >= 1
    gate.remove(rule["id"])

    gate.add({"type": "leader-election", "topic": "a3", "errors": ["LEADER_NOT_AVAILABLE"]})
    err = kafka_python_send(gate.bootstrap, "a3", b"v")
    assert isinstance(err, LeaderNotAvailableError), repr(err)
    assert kafka_python_send(gate.bootstrap, "b3", b"v") is None


class RdkafkaLog:
    """librdkafka's log lines (with debug=msg it logs every partition error it retries)."""

    def __init__(self):
        self.lines = []

    def log(self, level, msg, *args, **kwargs):
        self.lines.append(msg % args if args else msg)

    debug = info = warning = error = critical = exception = log

    def count(self, text):
        return sum(text in line for line in self.lines)


def test_retrying_producer_recovers_when_the_rule_is_removed(gate, cluster):
    rule = gate.add({"type": "leader-election", "topic": "a6"})
    log = RdkafkaLog()
    p = producer(gate.bootstrap, client_id="patient", logger=log,
                 **{"retry.backoff.ms": 50, "debug": "msg"})
    sent = values("p", 50)
    delivered = []
    for v in sent:
        p.produce("a6", v, on_delivery=lambda err, msg: delivered.append((err, msg.value())))
    # While the rule stands nothing is delivered, and nothing fails yet: the producer retries
    # (observed until its Produce requests were answered with 3 injected errors).
    def retried():
        p.poll(0.05)
        return gate.injected(rule["id"]) >= 3

    wait_for(retried, 60, 0, "3 injected leadership errors")
    assert delivered == [], delivered[:3]
    # Meanwhile another topic through the same producer is served normally.
    produce_ok(p, "b6", values("q", 10))
    assert delivered == [], delivered[:3]
    assert gate.injected(rule["id"]) >= 1
    # What the application's client log shows meanwhile: the injected leadership errors.
    seen = {t: log.count(t) for t in ("Not leader for partition", "Leader not available",
                                      "Broker not available")}
    assert sum(seen.values()) >= 1, log.lines[-20:]

    gate.remove(rule["id"])
    assert p.flush(60) == 0
    assert [e for e, _ in delivered if e is not None] == []
    stored = read_topic(cluster.bootstrap, "a6", 6).values
    counts = collections.Counter(stored)
    assert sorted(stored) == sorted(sent), {v: n for v, n in counts.items() if n != 1}


def test_consumer_stalls_then_recovers(gate, cluster):
    produce_ok(producer(cluster.bootstrap), "a1", values("x", 20))
    produce_ok(producer(cluster.bootstrap), "b1", values("y", 20))
    rule = gate.add({"type": "leader-election", "topic": "a1",
                     "errors": ["LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER"]})
    # Read while the rule fails three of this reader's fetches: nothing arrives.
    stalled = consume_until(gate.bootstrap, "a1", 1, injected_at_least(gate, rule["id"], 3),
                            what="3 injected leadership errors")
    assert stalled.records == []
    assert read_topic(gate.bootstrap, "b1", 1).values == values("y", 20)

    gate.remove(rule["id"])
    assert read_topic(gate.bootstrap, "a1", 1).values == values("x", 20)
