"""broken-brokers: Produce (and Fetch) answered with a configured error by kgate.

reject mode: the request is not forwarded, so nothing is written and retries deliver exactly
once; lost-ack mode: the request is written but the client is told it failed, so a retrying,
non-idempotent producer writes duplicates."""

import collections

from confluent_kafka import KafkaError

from chaoslib import (consume_for, produce, produce_ok, producer, read_topic, strict_producer,
                      values)


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
    sent = values("r", 300)
    d = produce(p, "a3", sent)
    assert not d.errors, d.errors[:5]
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
    starved = consume_for(gate.bootstrap, "a1", 1, 3)
    assert starved.records == [], starved.records[:3]
    assert gate.injected(rule["id"]) >= 1
    assert read_topic(gate.bootstrap, "b1", 1).values == values("g", 10)

    gate.remove(rule["id"])
    assert read_topic(gate.bootstrap, "a1", 1).values == values("f", 10)
