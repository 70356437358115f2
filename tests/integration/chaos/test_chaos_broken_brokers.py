"""broken-brokers: Produce (and Fetch) answered with a configured error by kgate.

reject mode: the request is not forwarded, so nothing is written and retries deliver exactly
once; lost-ack mode: the request is written but the client is told it failed, so a retrying,
non-idempotent producer writes duplicates."""

import collections
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

from chaoslib import (Deliveries, consume_until, consumer, injected_at_least, produce, produce_ok,
                      producer, read_topic, strict_producer, values)

# Error responses and record batches rewritten per protocol version: run against both the
# 2.0.2 and the 2.12 broker (conftest.py).
pytestmark = pytest.mark.every_backend


def test_reject_at_100_percent_reports_the_exact_error(gate, cluster):
    rule = gate.add({"type": "broken-brokers", "vcluster": "default", "topic": "a6", "rate": 100,
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    p = strict_producer(gate.bootstrap)

    hit = produce(p, "a6", values("a", 30))
    assert len(hit.errors) == 30, hit.reports
    assert set(hit.error_codes()) == {KafkaError.NOT_ENOUGH_REPLICAS}, hit.errors[:3]

    # The same producer, same connections: another topic is untouched.
    produce_ok(p, "b6", values("b", 30))
    # reject does not forward: nothing reached the cluster for a6.
    assert read_topic(cluster.bootstrap, "a6", 6).records == []
    assert sorted(read_topic(cluster.bootstrap, "b6", 6).values) == values("b", 30)
    assert gate.injected(rule["id"]) >= 1


def test_reject_at_20_percent_with_retries_delivers_exactly_once(gate, cluster):
    rule = gate.add({"type": "broken-brokers", "topic": "a3", "rate": 20,
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    # Default retries, not idempotent: exactly-once here is kgate's doing (nothing written on
    # a rejected request), not the producer's.
    p = producer(gate.bootstrap, client_id="retrying", **{"enable.idempotence": False,
                                                           "linger.ms": 0, "retry.backoff.ms": 10})
    sent = values("r", 200)
    # One request per message (the rate is rolled per request): 200 rolls at 20%.
    d = Deliveries()
    for v in sent:
        p.produce("a3", v, on_delivery=d)
        assert p.flush(60) == 0
    assert len(d.reports) == len(sent) and not d.errors, d.errors[:5]
    assert gate.injected(rule["id"]) >= 1, "the 20% rule never fired: the test proves nothing"

    got = read_topic(cluster.bootstrap, "a3", 3).values
    counts = collections.Counter(got)
    assert sorted(got) == sorted(sent), (
        f"{len(got)} stored for {len(sent)} sent; duplicates: "
        f"{[v for v, n in counts.items() if n > 1][:5]}, missing: {set(sent) - set(got)}")


def test_lost_ack_writes_duplicates(gate, cluster):
    retries = 2
    rule = gate.add({"type": "broken-brokers", "topic": "a1", "rate": 100, "mode": "lost-ack",
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    p = producer(gate.bootstrap, client_id="lost-ack", **{
        "enable.idempotence": False, "message.send.max.retries": retries,
        "retry.backoff.ms": 10, "linger.ms": 0, "max.in.flight": 1})
    sent = values("l", 5)
    d = produce(p, "a1", sent)
    # Every attempt was written, every answer said it failed.
    assert set(d.error_codes()) == {KafkaError.NOT_ENOUGH_REPLICAS}, d.reports

    got = read_topic(cluster.bootstrap, "a1", 1).values
    counts = collections.Counter(got)
    assert set(counts) == set(sent), counts
    assert all(n == retries + 1 for n in counts.values()), (
        f"each attempt should be stored once: {counts}")
    assert gate.injected(rule["id"]) >= retries + 1  # one per Produce request, not per record

    # Out of scope: another topic, same producer settings, no duplicates and no errors.
    produce_ok(p, "b1", values("u", 5))
    assert read_topic(cluster.bootstrap, "b1", 1).values == values("u", 5)


def test_fetch_error_starves_the_topic_only(gate, cluster):
    produce_ok(producer(cluster.bootstrap), "a1", values("f", 10))
    produce_ok(producer(cluster.bootstrap), "b1", values("g", 10))
    rule = gate.add({"type": "broken-brokers", "topic": "a1",
                     "errors": {"fetch": "NOT_LEADER_OR_FOLLOWER"}})
    # Read while the rule fails three of this reader's fetches: nothing arrives.
    starved = consume_until(gate.bootstrap, "a1", 1, injected_at_least(gate, rule["id"], 3),
                            what="3 injected fetch errors")
    assert starved.records == [], starved.records[:3]
    assert read_topic(gate.bootstrap, "b1", 1).values == values("g", 10)

    gate.remove(rule["id"])
    assert read_topic(gate.bootstrap, "a1", 1).values == values("f", 10)


# ---------------------------------------------------------------------------------------------
# Partial matches: in-scope and out-of-scope partitions in the same requests


def test_reject_partial_produce_writes_only_the_out_of_scope_partitions(gate, cluster):
    rule = gate.add({"type": "broken-brokers", "topic": "a6",
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    # A long linger puts both topics' partitions led by one broker into one Produce request.
    p = strict_producer(gate.bootstrap, **{"linger.ms": 200})
    d = Deliveries()
    in_scope, out_scope = values("in", 60), values("out", 60)
    for a, b in zip(in_scope, out_scope):
        p.produce("a6", a, on_delivery=d)
        p.produce("b6", b, on_delivery=d)
    assert p.flush(60) == 0
    by_value = {v: err for v, err, _, _ in d.reports}
    assert {by_value[v].code() if by_value[v] else None for v in in_scope} == \
        {KafkaError.NOT_ENOUGH_REPLICAS}
    assert [v for v in out_scope if by_value[v] is not None] == []
    assert read_topic(cluster.bootstrap, "a6", 6).values == []
    assert sorted(read_topic(cluster.bootstrap, "b6", 6).values) == sorted(out_scope)
    assert gate.injected(rule["id"]) >= 1


def test_lost_ack_partial_produce(gate, cluster):
    gate.add({"type": "broken-brokers", "topic": "a6", "mode": "lost-ack",
              "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    p = strict_producer(gate.bootstrap, **{"linger.ms": 200})
    d = Deliveries()
    in_scope, out_scope = values("in", 30), values("out", 30)
    for a, b in zip(in_scope, out_scope):
        p.produce("a6", a, on_delivery=d)
        p.produce("b6", b, on_delivery=d)
    assert p.flush(60) == 0
    by_value = {v: err for v, err, _, _ in d.reports}
    assert {by_value[v].code() if by_value[v] else None for v in in_scope} == \
        {KafkaError.NOT_ENOUGH_REPLICAS}
    assert [v for v in out_scope if by_value[v] is not None] == []
    # Both written once (no retries): the error was a lie for a6.
    assert sorted(read_topic(cluster.bootstrap, "a6", 6).values) == sorted(in_scope)
    assert sorted(read_topic(cluster.bootstrap, "b6", 6).values) == sorted(out_scope)


def test_fetch_error_partial_fetch(gate, cluster):
    w = producer(cluster.bootstrap)
    produce_ok(w, "a6", values("a", 30))
    produce_ok(w, "b6", values("b", 30))
    rule = gate.add({"type": "broken-brokers", "topic": "a6",
                     "errors": {"fetch": "NOT_LEADER_OR_FOLLOWER"}})
    # One consumer, both topics: every Fetch names partitions of both.
    c = consumer(gate.bootstrap)
    got = collections.defaultdict(list)
    c.assign([TopicPartition(t, p, 0) for t in ("a6", "b6") for p in range(6)])
    deadline = time.monotonic() + 30
    try:
        while len(got["b6"]) < 30 and time.monotonic() < deadline:
            for m in c.consume(100, 0.2):
                if m.error() is None:
                    got[m.topic()].append(m.value())
    finally:
        c.close()
    assert sorted(got["b6"]) == sorted(values("b", 30))
    assert got["a6"] == []
    assert gate.injected(rule["id"]) >= 1


def test_first_error_rule_wins(gate, cluster):
    first = gate.add({"type": "broken-brokers", "topic": "a1",
                      "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    gate.add({"type": "broken-brokers", "topic": "a1",
              "errors": {"produce": "TOPIC_AUTHORIZATION_FAILED"}})
    p = strict_producer(gate.bootstrap)
    assert produce(p, "a1", values("x", 3)).error_codes() == [KafkaError.NOT_ENOUGH_REPLICAS] * 3
    gate.remove(first["id"])
    assert produce(p, "a1", values("y", 3)).error_codes() == \
        [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3


def test_lost_ack_sequence_checked_producer_stores_once(gate, cluster):
    """docs/chaos.md: with lost-ack, an idempotent producer's retries are dropped by the broker
    as duplicates. (The dev cluster checks sequences for transactional producers only, so the
    test uses one.) One request in two loses its ack; every message ends up stored once."""
    rule = gate.add({"type": "broken-brokers", "topic": "a1", "mode": "lost-ack", "rate": 50,
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    p = producer(gate.bootstrap, client_id="txn", **{
        "transactional.id": "chaos-lost-ack-" + str(time.monotonic_ns()),
        "retry.backoff.ms": 10})
    p.init_transactions(30)
    p.begin_transaction()
    sent = values("txn", 40)
    d = Deliveries()
    for v in sent:  # one request per message: 40 rolls
        p.produce("a1", v, on_delivery=d)
        assert p.flush(60) == 0
    p.commit_transaction(30)
    assert not d.errors, d.errors[:3]
    assert gate.injected(rule["id"]) >= 1
    assert read_topic(cluster.bootstrap, "a1", 1, **{"isolation.level": "read_committed"}
                      ).values == sent
