"""MirrorMaker 2's records, built by the tests from Kafka's documented layouts (connect/mirror
Checkpoint and OffsetSync: Kafka protocol types, STRING = INT16 length + UTF-8), never with
kgate's own encoder, and a helper that writes raw records to a cluster."""

import struct

from confluent_kafka import Producer


def mm2_string(s):
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def checkpoint_key(group, topic, partition):
    return mm2_string(group) + mm2_string(topic) + struct.pack(">i", partition)


def checkpoint_value(upstream, downstream, metadata="", version=0):
    return struct.pack(">hqq", version, upstream, downstream) + mm2_string(metadata)


def offset_sync(topic, partition, upstream, downstream):
    """(key, value) of an OffsetSync: key topic, partition; value upstream, downstream offsets
    (no version field)."""
    return (mm2_string(topic) + struct.pack(">i", partition),
            struct.pack(">qq", upstream, downstream))


def write_records(cluster, topic, records):
    """records: [(key bytes or None, value bytes or None)], in this order, to partition 0."""
    p = Producer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "linger.ms": 5, "log_level": 3})
    for key, value in records:
        p.produce(topic, key=key, value=value, partition=0)
    assert p.flush(30) == 0
