"""Records faults: corrupt-records, duplicate-records, invalid-schema-id, on fetch (what the
consumer sees; the stored data stays intact) and on produce (what gets stored; read back
straight from the dev cluster)."""

import collections
import struct
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

from chaoslib import consumer, produce_ok, producer, read_topic, strict_producer, values

# Error responses and record batches rewritten per protocol version: run against both the
# 2.0.2 and the 2.12 broker (conftest.py).
pytestmark = pytest.mark.every_backend

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def store(cluster, topic, vals, codec="none"):
    """Writes VALS straight to the dev cluster (no kgate), in few batches."""
    p = producer(cluster.bootstrap, client_id="direct-writer",
                 **{"compression.type": codec, "linger.ms": 50})
    produce_ok(p, topic, vals)


# ---------------------------------------------------------------------------------------------
# corrupt-records


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_on_fetch_appends_garbage_with_a_valid_crc(gate, cluster, codec):
    sent = values(f"c-{codec}", 40, size=30)
    store(cluster, "a1", sent, codec)
    store(cluster, "b1", sent, codec)
    rule = gate.add({"type": "corrupt-records", "topic": "a1", "on": "fetch", "bytes": 8,
                     "how": "append", "crc": "valid"})

    # check.crcs on: the batches are well formed, the application just gets garbage values.
    got = read_topic(gate.bootstrap, "a1", 1, **{"check.crcs": True})
    assert got.errors == []
    assert len(got.values) == len(sent)
    for orig, seen in zip(sent, got.values):
        assert len(seen) == len(orig) + 8 and seen[:len(orig)] == orig, (orig, seen)
    assert gate.injected(rule["id"]) >= 1

    # Out of scope topic, and the stored data itself: intact.
    assert read_topic(gate.bootstrap, "b1", 1).values == sent
    assert read_topic(cluster.bootstrap, "a1", 1).values == sent


def test_corrupt_rate_is_per_record(gate, cluster):
    sent = values("half", 200, size=20)
    store(cluster, "a1", sent, "lz4")
    gate.add({"type": "corrupt-records", "topic": "a1", "rate": 50, "bytes": 3})
    got = read_topic(gate.bootstrap, "a1", 1).values
    assert len(got) == len(sent)
    changed = [seen != orig for orig, seen in zip(sent, got)]
    for orig, seen in zip(sent, got):
        assert seen == orig or (len(seen) == len(orig) + 3 and seen.startswith(orig))
    # 200 records at 50%: both outcomes occur (all-or-none has a chance of 2^-199).
    assert 0 < sum(changed) < len(sent), sum(changed)


def test_corrupt_in_a_fetch_shared_with_an_unaffected_topic(gate, cluster):
    sent_a, sent_b = values("ca", 30), values("cb", 30)
    store(cluster, "a6", sent_a)
    store(cluster, "b6", sent_b)
    gate.add({"type": "corrupt-records", "topic": "a6", "bytes": 5})
    c = consumer(gate.bootstrap)
    got = collections.defaultdict(list)
    c.assign([TopicPartition(t, p, 0) for t in ("a6", "b6") for p in range(6)])
    deadline = time.monotonic() + 30
    try:
        while len(got["a6"]) + len(got["b6"]) < 60 and time.monotonic() < deadline:
            for m in c.consume(100, 0.2):
                if m.error() is None:
                    got[m.topic()].append(m.value())
    finally:
        c.close()
    assert sorted(got["b6"]) == sorted(sent_b)
    assert len(got["a6"]) == 30
    assert sorted(v[:-5] for v in got["a6"]) == sorted(sent_a)
    assert all(len(v) == len(o) + 5 for v, o in zip(sorted(got["a6"]), sorted(sent_a)))


def test_corrupt_on_fetch_overwrites_bytes(gate, cluster):
    sent = values("o", 30, size=40)
    store(cluster, "a1", sent)
    gate.add({"type": "corrupt-records", "topic": "a1", "bytes": 8, "how": "overwrite"})
    got = read_topic(gate.bootstrap, "a1", 1).values
    assert len(got) == len(sent)
    for orig, seen in zip(sent, got):
        assert len(seen) == len(orig), (orig, seen)
        changed = sum(a != b for a, b in zip(orig, seen))
        assert 1 <= changed <= 8, (orig, seen)


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_corrupt_on_fetch_with_an_invalid_crc_trips_the_client_check(gate, cluster, codec):
    sent = values("bad", 20, size=30)
    store(cluster, "a1", sent, codec)
    store(cluster, "b1", sent, codec)
    rule = gate.add({"type": "corrupt-records", "topic": "a1", "bytes": 4, "crc": "invalid"})

    checked = read_topic(gate.bootstrap, "a1", 1, stop_on_error=True, timeout=30,
                         **{"check.crcs": True})
    assert checked.errors, f"no CRC error reported; records seen: {checked.values[:3]}"
    assert checked.errors[0].code() == KafkaError._BAD_MSG, checked.errors
    assert "crc" in checked.errors[0].str().lower(), checked.errors[0].str()
    assert sent[0] not in checked.values, "an intact record came through with a failing CRC"
    assert gate.injected(rule["id"]) >= 1

    # The same consumer settings on an unaffected topic: no CRC error.
    clean = read_topic(gate.bootstrap, "b1", 1, **{"check.crcs": True})
    assert clean.errors == [] and clean.values == sent


def test_corrupt_on_produce_stores_garbage(gate, cluster):
    gate.add({"type": "corrupt-records", "topic": "a1", "on": "produce", "bytes": 6})
    p = strict_producer(gate.bootstrap, **{"compression.type": "gzip", "linger.ms": 20})
    sent = values("p", 25, size=20)
    produce_ok(p, "a1", sent)
    produce_ok(p, "b1", sent)

    stored = read_topic(cluster.bootstrap, "a1", 1, **{"check.crcs": True})
    assert stored.errors == []
    assert len(stored.values) == len(sent)
    for orig, seen in zip(sent, stored.values):
        assert len(seen) == len(orig) + 6 and seen[:len(orig)] == orig, (orig, seen)
    assert read_topic(cluster.bootstrap, "b1", 1).values == sent


# ---------------------------------------------------------------------------------------------
# duplicate-records


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_duplicate_on_fetch_delivers_each_record_twice(gate, cluster, codec):
    sent = values(f"d-{codec}", 30)
    store(cluster, "a3", sent, codec)
    store(cluster, "b3", sent, codec)
    rule = gate.add({"type": "duplicate-records", "topic": "a3", "on": "fetch"})

    got = read_topic(gate.bootstrap, "a3", 3)
    counts = collections.Counter(got.values)
    assert set(counts) == set(sent)
    assert set(counts.values()) == {2}, counts
    assert gate.injected(rule["id"]) >= 1

    assert sorted(read_topic(gate.bootstrap, "b3", 3).values) == sorted(sent)
    assert sorted(read_topic(cluster.bootstrap, "a3", 3).values) == sorted(sent)


def test_duplicate_on_produce_stores_each_batch_twice(gate, cluster):
    gate.add({"type": "duplicate-records", "topic": "a1", "on": "produce"})
    p = strict_producer(gate.bootstrap, **{"linger.ms": 20})
    sent = values("dp", 20)
    d = produce_ok(p, "a1", sent)
    assert len(d.ok) == len(sent)
    produce_ok(p, "b1", sent)

    stored = read_topic(cluster.bootstrap, "a1", 1).values
    counts = collections.Counter(stored)
    assert set(counts) == set(sent) and set(counts.values()) == {2}, counts
    assert read_topic(cluster.bootstrap, "b1", 1).values == sent


# ---------------------------------------------------------------------------------------------
# invalid-schema-id


def wire(schema_id, payload):
    """A value in the Confluent wire format: magic 0, big-endian schema id, payload."""
    return b"\x00" + struct.pack(">i", schema_id) + payload


def test_schema_id_on_fetch(gate, cluster):
    framed = [wire(7, b"payload-%d" % i) for i in range(20)]
    plain = [b"plain-%d" % i for i in range(5)]  # not in the wire format: left alone
    store(cluster, "a1", framed + plain, "snappy")
    store(cluster, "b1", framed)
    rule = gate.add({"type": "invalid-schema-id", "topic": "a1", "schema_id": 4242})

    got = read_topic(gate.bootstrap, "a1", 1).values
    assert len(got) == len(framed) + len(plain)
    for orig, seen in zip(framed, got):
        assert seen[0] == 0 and struct.unpack(">i", seen[1:5])[0] == 4242, seen
        assert seen[5:] == orig[5:], (orig, seen)
    assert got[len(framed):] == plain
    assert gate.injected(rule["id"]) >= 1

    assert read_topic(gate.bootstrap, "b1", 1).values == framed
    assert read_topic(cluster.bootstrap, "a1", 1).values == framed + plain


def test_schema_id_on_produce(gate, cluster):
    gate.add({"type": "invalid-schema-id", "topic": "a1", "schema_id": -1, "on": "produce"})
    framed = [wire(12, b"p-%d" % i) for i in range(10)]
    p = strict_producer(gate.bootstrap)
    produce_ok(p, "a1", framed)
    produce_ok(p, "b1", framed)
    stored = read_topic(cluster.bootstrap, "a1", 1).values
    assert [struct.unpack(">i", v[1:5])[0] for v in stored] == [-1] * len(framed)
    assert [v[5:] for v in stored] == [v[5:] for v in framed]
    assert read_topic(cluster.bootstrap, "b1", 1).values == framed


def test_duplicate_on_produce_sequence_checked_producer_is_protected(gate, cluster):
    """docs/chaos.md: idempotent producers are protected by the broker's sequence check. (The
    dev cluster checks sequences for transactional producers only, so the test uses one.)"""
    rule = gate.add({"type": "duplicate-records", "topic": "a1", "on": "produce"})
    p = producer(gate.bootstrap, client_id="txn",
                 **{"transactional.id": "chaos-dup-" + str(time.monotonic_ns())})
    p.init_transactions(30)
    p.begin_transaction()
    sent = values("txn", 20)
    produce_ok(p, "a1", sent)
    p.commit_transaction(30)
    assert gate.injected(rule["id"]) >= 1
    assert read_topic(cluster.bootstrap, "a1", 1, **{"isolation.level": "read_committed"}
                      ).values == sent
