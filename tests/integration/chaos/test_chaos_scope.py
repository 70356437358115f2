"""The scope of a rule: virtual cluster, topic regex, client.id regex, consumer group, API, broker.
Each test shows the rule acting inside its scope and not outside it, at the same moment."""

import collections
import time

from confluent_kafka import KafkaError, TopicPartition

from chaoslib import (consume_until, consumer, injected_at_least, partition_leaders, produce,
                      produce_ok, producer, read_topic, strict_producer, values)

NER = {"errors": {"produce": "NOT_ENOUGH_REPLICAS"}}


def rejected(p, topic, n=3, partition=None):
    """True when every one of N messages failed with NOT_ENOUGH_REPLICAS, False when every one
    was delivered; anything else fails the test."""
    d = produce(p, topic, values("scope", n), partition=partition)
    codes = d.error_codes()
    if codes == [KafkaError.NOT_ENOUGH_REPLICAS] * n:
        return True
    assert codes == [], d.reports
    return False


def test_vcluster_scope(gate_factory, cluster):
    gate = gate_factory(vclusters=("default", "other"))
    gate.add({"type": "broken-brokers", "vcluster": "default", **NER})
    assert rejected(strict_producer(gate.vc_bootstrap("default")), "a6")
    assert not rejected(strict_producer(gate.vc_bootstrap("other")), "a6")


def test_topic_regex_is_anchored(gate, cluster):
    gate.add({"type": "broken-brokers", "topic": r"orders\..*", **NER})
    p = strict_producer(gate.bootstrap)
    assert rejected(p, "orders.eu")
    assert rejected(p, "orders.us")
    assert not rejected(p, "xorders")
    assert not rejected(p, "a6")


def test_client_id_regex_is_anchored(gate, cluster):
    gate.add({"type": "broken-brokers", "client_id": "billing-[0-9]+", **NER})
    assert rejected(strict_producer(gate.bootstrap, client_id="billing-7"), "a6")
    assert not rejected(strict_producer(gate.bootstrap, client_id="billing-x"), "a6")
    assert not rejected(strict_producer(gate.bootstrap, client_id="xbilling-7"), "a6")


def group_read(bootstrap, group, client_id, topic, want_offset, timeout=60):
    """A subscribed member of GROUP reads TOPIC (one partition) to WANT_OFFSET; returns values."""
    c = consumer(bootstrap, group=group, client_id=client_id)
    got = []
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= want_offset:
                        return got
                    continue
                raise AssertionError(f"{group}: {m.error()}")
            got.append(m.value())
        raise AssertionError(f"{group} did not reach offset {want_offset}: {len(got)} records")
    finally:
        c.close()


def test_group_scope(gate, cluster):
    sent = values("grp", 20)
    produce_ok(producer(cluster.bootstrap), "a1", sent)
    rule = gate.add({"type": "duplicate-records", "group": "dup-group"})
    dup = group_read(gate.bootstrap, "dup-group", "dup-member", "a1", len(sent))
    plain = group_read(gate.bootstrap, "plain-group", "plain-member", "a1", len(sent))
    assert collections.Counter(dup) == {v: 2 for v in sent}
    assert plain == sent
    assert gate.injected(rule["id"]) >= 1


def test_api_scope(gate, cluster):
    produce_ok(producer(cluster.bootstrap), "a1", values("old", 5))
    rule = gate.add({"type": "leader-election", "topic": "a1", "api": ["Fetch"]})
    # Produce and ListOffsets are partition-level too, but out of this rule's scope.
    produce_ok(strict_producer(gate.bootstrap), "a1", values("new", 5))
    c = consumer(gate.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition("a1", 0), timeout=20) == (0, 10)
    finally:
        c.close()
    assert consume_until(gate.bootstrap, "a1", 1, injected_at_least(gate, rule["id"], 3),
                         what="3 injected fetch errors").records == []
    gate.remove(rule["id"])
    assert read_topic(gate.bootstrap, "a1", 1).values == values("old", 5) + values("new", 5)


def test_broker_scope(gate, cluster):
    leaders = partition_leaders(gate.bootstrap, "a6")
    target = leaders[0]
    assert len(set(leaders.values())) > 1, leaders
    gate.add({"type": "broken-brokers", "broker": target, "topic": "a6", **NER})
    p = strict_producer(gate.bootstrap)
    for part, leader in sorted(leaders.items()):
        assert rejected(p, "a6", partition=part) == (leader == target), (part, leader, target)
