"""Client-side helpers for the chaos tests: confluent-kafka (librdkafka) producers and readers
that report exactly what an application would see, and raw-socket round trips for timing.

Timing helpers only ever feed lower-bound assertions ("at least the configured delay").
"""

import socket
import struct
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kghelpers import encode_request, recv_frame, round_trip

COMMON = {"broker.address.family": "v4", "socket.timeout.ms": 10000,
          "topic.metadata.refresh.interval.ms": 5000, "reconnect.backoff.ms": 50,
          "reconnect.backoff.max.ms": 500}


def producer(bootstrap, client_id="chaos-test", **extra):
    conf = dict(COMMON, **{"bootstrap.servers": bootstrap, "client.id": client_id,
                           "linger.ms": 5, "message.timeout.ms": 30000})
    conf.update(extra)
    return Producer(conf)


def strict_producer(bootstrap, client_id="chaos-strict", **extra):
    """A producer that gives up at the first error: the error the broker (or kgate) answered
    reaches the delivery report as is."""
    conf = {"message.send.max.retries": 0, "enable.idempotence": False, "acks": "all"}
    conf.update(extra)
    return producer(bootstrap, client_id=client_id, **conf)


class Deliveries:
    """Delivery reports in arrival order: (value, error or None, partition, offset)."""

    def __init__(self):
        self.reports = []

    def __call__(self, err, msg):
        self.reports.append((msg.value(), err, msg.partition(), msg.offset()))

    @property
    def ok(self):
        return [r for r in self.reports if r[1] is None]

    @property
    def errors(self):
        return [r[1] for r in self.reports if r[1] is not None]

    def error_codes(self):
        return [e.code() for e in self.errors]


def produce(p, topic, values, partition=None, key=None, flush_timeout=60):
    """Produces VALUES, waits for every delivery report; returns the Deliveries."""
    d = Deliveries()
    for v in values:
        kwargs = {"on_delivery": d}
        if partition is not None:
            kwargs["partition"] = partition
        if key is not None:
            kwargs["key"] = key
        p.produce(topic, v, **kwargs)
        p.poll(0)
    # Polls for these reports only: other messages the producer holds (say, stuck in a fault)
    # must not hold up this call.
    p.flush(0)
    deadline = time.monotonic() + flush_timeout
    while len(d.reports) < len(values):
        assert time.monotonic() < deadline, (
            f"{len(values) - len(d.reports)} of {len(values)} message(s) to {topic} without a "
            f"delivery report after {flush_timeout}s")
        p.poll(0.05)
    return d


def produce_ok(p, topic, values, **kw):
    d = produce(p, topic, values, **kw)
    assert not d.errors, f"delivery errors on {topic}: {d.errors[:5]}"
    return d


def values(prefix, n, size=0):
    """N distinct values; SIZE pads each to at least that many bytes (printable, so a corrupted
    byte is easy to see in a failure message)."""
    out = []
    for i in range(n):
        v = f"{prefix}-{i:05d}-".encode()
        if size > len(v):
            v += b"x" * (size - len(v))
        out.append(v)
    return out


def timed_produce(p, topic, value, partition=None):
    """Seconds from produce() to the delivery report of one message, and its error."""
    d = Deliveries()
    kwargs = {"on_delivery": d}
    if partition is not None:
        kwargs["partition"] = partition
    start = time.monotonic()
    p.produce(topic, value, **kwargs)
    assert p.flush(60) == 0, "message still queued after 60s"
    elapsed = time.monotonic() - start
    return elapsed, d.reports[0][1]


def warm_up(p, topic, partitions):
    """One delivered message per partition, so later timings see connected brokers and known
    leaders rather than bootstrap work."""
    for part in range(partitions):
        produce_ok(p, topic, [b"warm-up"], partition=part)


# ---------------------------------------------------------------------------------------------
# Reading


def consumer(bootstrap, group=None, client_id="chaos-reader", **extra):
    conf = dict(COMMON, **{"bootstrap.servers": bootstrap, "client.id": client_id,
                           "group.id": group or "reader-" + uuid.uuid4().hex,
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "enable.partition.eof": True, "session.timeout.ms": 6000,
                           "heartbeat.interval.ms": 500})
    conf.update(extra)
    return Consumer(conf)


class Read:
    """What a reader saw: records (partition, offset, value) in order, and errors."""

    def __init__(self):
        self.records = []
        self.errors = []

    @property
    def values(self):
        return [r[2] for r in self.records]


def high_watermarks(bootstrap, topic, partitions):
    c = consumer(bootstrap, client_id="chaos-watermarks")
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
                for p in range(partitions)}
    finally:
        c.close()


def read_topic(bootstrap, topic, partitions, until=None, timeout=60, stop_on_error=False,
               **conf):
    """Reads TOPIC from the beginning until every partition reached UNTIL[p] (default: the high
    watermarks, asked of BOOTSTRAP first). Returns a Read."""
    if until is None:
        until = high_watermarks(bootstrap, topic, partitions)
    c = consumer(bootstrap, **conf)
    out = Read()
    done = {p for p in range(partitions) if until[p] == 0}
    position = {p: 0 for p in range(partitions)}
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = time.monotonic() + timeout
    try:
        while len(done) < partitions:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"reading {topic} via {bootstrap}: partitions {sorted(set(range(partitions)) - done)}"
                    f" not read to {until} within {timeout}s (at {position}); "
                    f"{len(out.records)} records, errors {out.errors[:5]}")
            for m in c.consume(500, 0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= until[m.partition()]:
                            done.add(m.partition())
                        continue
                    out.errors.append(err)
                    if stop_on_error:
                        return out
                    continue
                out.records.append((m.partition(), m.offset(), m.value()))
                position[m.partition()] = m.offset() + 1
                if m.offset() + 1 >= until[m.partition()]:
                    done.add(m.partition())
    finally:
        c.close()
    return out


def consume_until(bootstrap, topic, partitions, done, timeout=60, what="the condition",
                  **conf):
    """Reads TOPIC from the beginning until DONE() holds (to show that nothing arrives while a
    fault is observed to act, e.g. until a rule has injected into this reader's fetches).
    Bounded: fails after TIMEOUT seconds."""
    c = consumer(bootstrap, **conf)
    out = Read()
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, (
                f"reading {topic}: {what} did not happen within {timeout}s "
                f"({len(out.records)} records, errors {out.errors[:3]})")
            for m in c.consume(500, 0.2):
                err = m.error()
                if err is None:
                    out.records.append((m.partition(), m.offset(), m.value()))
                elif err.code() != KafkaError._PARTITION_EOF:
                    out.errors.append(err)
    finally:
        c.close()
    return out


def injected_at_least(gate, rule_id, n):
    """A predicate: rule RULE_ID has injected N faults (for consume_until and wait_for)."""
    return lambda: (gate.injected(rule_id) or 0) >= n


def partition_leaders(bootstrap, topic):
    """{partition: leader node id}, from the Metadata a client sees."""
    p = Producer(dict(COMMON, **{"bootstrap.servers": bootstrap}))
    md = p.list_topics(topic, timeout=20)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {pid: pm.leader for pid, pm in t.partitions.items()}


# ---------------------------------------------------------------------------------------------
# Raw round trips (no client library in between: what is measured is kgate's doing)


def metadata_v1_topics(corr_id, topics, client_id):
    body = struct.pack(">i", len(topics))
    for t in topics:
        body += struct.pack(">h", len(t)) + t.encode()
    return encode_request(3, 1, corr_id, body, client_id=client_id)


def fastest_metadata(port, client_id="chaos-raw", topics=(), rounds=3):
    """Seconds for the fastest of ROUNDS Metadata round trips: a lower bound that holds for
    every request."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        best = None
        for i in range(rounds):
            frame = metadata_v1_topics(i + 1, list(topics), client_id)
            start = time.monotonic()
            round_trip(s, frame)
            took = time.monotonic() - start
            best = took if best is None else min(best, took)
        return best


def recv_all_until_closed(sock, timeout):
    """Bytes received until the peer closes (or TIMEOUT passes: returns with closed False)."""
    sock.settimeout(timeout)
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(got), True
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return bytes(got), True
    except socket.timeout:
        return bytes(got), False
    return bytes(got), False


__all__ = ["COMMON", "producer", "strict_producer", "Deliveries", "produce", "produce_ok",
           "values", "timed_produce", "warm_up", "consumer", "Read", "high_watermarks",
           "read_topic", "consume_until", "injected_at_least", "partition_leaders", "metadata_v1_topics",
           "fastest_metadata", "recv_all_until_closed", "recv_frame"]
