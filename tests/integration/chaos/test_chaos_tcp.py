"""TCP faults (as Toxiproxy has them): down, reset, timeout, bandwidth, slicer, limit-data.

TCP faults are decided per connection, when it is accepted and again once its client id is
known (first request), so every test starts the affected client after adding the rule.

No test depends on how long something takes: each waits (bounded, the bound only guards
against a hang) for an event it can observe (kgate's counters, its rule list, the client's
reports), and timings are asserted only as lower bounds of an injected slowdown."""

import collections
import re
import socket
import time

from confluent_kafka import KafkaError

from chaoslib import (Deliveries, fastest_metadata, injected_at_least, metadata_v1_topics,
                      produce_ok, producer, read_topic, recv_all_until_closed, values)
from kghelpers import round_trip, wait_for


class ClientEvents:
    """What librdkafka tells the application about its connections: error_cb events and log
    lines."""

    def __init__(self):
        self.errors = []
        self.lines = []

    def on_error(self, err):
        self.errors.append(err)

    def log(self, level, msg, *args, **kwargs):
        self.lines.append(msg % args if args else msg)

    debug = info = warning = error = critical = exception = log

    def conf(self):
        return {"error_cb": self.on_error, "logger": self}

    def transport_errors(self):
        return [e for e in self.errors
                if e.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)]


def serve_until(p, predicate, timeout, what):
    """Serves P's callbacks until PREDICATE() holds; fails after TIMEOUT seconds (a hang)."""
    def step():
        p.poll(0.05)
        return predicate()
    return wait_for(step, timeout, 0, what)


# ---------------------------------------------------------------------------------------------
# down


def test_down_refuses_the_client_until_the_rule_expires(gate, cluster):
    standing = gate.add({"type": "down", "client_id": "down-.*"})
    events = ClientEvents()
    # Messages wait out the whole test (no message timeout is part of what is checked).
    p = producer(gate.bootstrap, client_id="down-1", **events.conf(),
                 **{"message.timeout.ms": 300000})
    d = Deliveries()
    sent = values("down", 10)
    for v in sent:
        p.produce("a6", v, on_delivery=d)
    # kgate refuses its connections (counted), and the client reports the failures.
    serve_until(p, lambda: gate.injected(standing["id"]) >= 2 and events.transport_errors(),
                60, "two refused connections, reported to the client")
    assert d.reports == [], d.reports[:3]

    # Out of scope meanwhile: another client id is served.
    produce_ok(producer(gate.bootstrap, client_id="up-1"), "b6", values("up", 10))

    # The same refusal from a rule that expires, then the standing one removed: from here on
    # the expiring rule alone keeps the client out.
    expiring = gate.add({"type": "down", "client_id": "down-.*", "for": "2s"})
    gate.remove(standing["id"])

    def expired():
        p.poll(0.05)  # delivery reports first: each happened before the listing below
        if gate.rule(expiring["id"]) is None:
            return True
        assert d.reports == [], f"delivered while the down rule was still listed: {d.reports[:3]}"
        return False

    wait_for(expired, 60, 0, f"rule {expiring['id']} to expire")
    assert re.search(rf"rule {expiring['id']} \(down\) expired", gate.stderr_text()), \
        gate.stderr_text()[-2000:]
    # Expired: the same producer reconnects and delivers everything, once.
    assert p.flush(60) == 0
    assert d.errors == [] and sorted(r[0] for r in d.ok) == sorted(sent)
    assert sorted(read_topic(cluster.bootstrap, "a6", 6).values) == sorted(sent)


def test_down_on_a_broker_port_closes_at_accept(gate, cluster):
    gate.add({"type": "down", "broker": 2})
    with socket.create_connection(("127.0.0.1", gate.broker_port(2)), timeout=10) as s:
        got, closed = recv_all_until_closed(s, 10)
    assert closed and got == b""
    # Another broker's port and the bootstrap port still answer.
    fastest_metadata(gate.broker_port(1), "raw", rounds=1)
    fastest_metadata(gate.bootstrap_port, "raw", rounds=1)


def test_down_closes_an_open_connection_at_its_next_request(gate, cluster):
    """docs/chaos.md: `down` — "connections are refused / closed at the next request"; the
    engine's header (kg_chaos.h) says the same. A running application keeps its connections:
    a down rule added while it runs must cut them, or the rehearsal does nothing to it."""
    with socket.create_connection(("127.0.0.1", gate.bootstrap_port), timeout=10) as s:
        round_trip(s, metadata_v1_topics(1, [], "running-app"))
        rule = gate.add({"type": "down", "client_id": "running-app"})
        try:
            s.sendall(metadata_v1_topics(2, [], "running-app"))
            got, closed = recv_all_until_closed(s, 5)
        except (BrokenPipeError, ConnectionResetError):
            got, closed = b"", True
    assert closed and got == b"", (
        f"the open connection was not closed at its next request (got {len(got)} bytes back, "
        f"injected={gate.injected(rule['id'])})")


# ---------------------------------------------------------------------------------------------
# reset


def test_reset_client_reconnects_and_recovers(gate, cluster):
    rule = gate.add({"type": "reset", "client_id": "reset-.*", "after_ms": 300})
    events = ClientEvents()
    p = producer(gate.bootstrap, client_id="reset-1", **events.conf(),
                 **{"enable.idempotence": True, "acks": "all", "message.timeout.ms": 300000})
    d = Deliveries()
    sent = []

    def produce_one():
        v = b"reset-%05d" % len(sent)
        sent.append(v)
        p.produce("a3", v, on_delivery=d)
        p.poll(0.1)

    # Keep producing until kgate has reset three of the client's connections, and the client
    # noticed.
    def reset_three_times():
        produce_one()
        noticed = [l for l in events.lines if re.search(r"reset|Disconnected", l, re.I)]
        return (gate.stderr_text().count("chaos reset") >= 3 and
                (noticed or events.transport_errors()))

    wait_for(reset_three_times, 120, 0, "3 connection resets the client noticed")
    assert gate.injected(rule["id"]) >= 3
    gate.remove(rule["id"])
    after = values("after", 10)
    for v in after:
        p.produce("a3", v, on_delivery=d)
    sent += after
    assert p.flush(60) == 0
    assert d.errors == [], d.errors[:5]
    # Nothing lost, nothing foreign. A reset that cuts a Produce request in flight leaves the
    # client not knowing whether it was written: librdkafka 2.0.2 sends it again, and the mock
    # broker can store that batch twice (seen in about one run in six, only when kgate's log
    # shows a reset with a request in flight). Without such a reset: exactly once.
    stored = read_topic(cluster.bootstrap, "a3", 3).values
    assert sorted(set(stored)) == sorted(sent), collections.Counter(stored).most_common(3)
    twice = sorted(v for v, n in collections.Counter(stored).items() if n > 1)
    cut = len(re.findall(r"[1-9][0-9]* in flight\): chaos reset", gate.stderr_text()))
    print(f"resets with a request in flight: {cut}; records stored twice: {len(twice)}")
    assert not twice or cut > 0, twice[:5]


# ---------------------------------------------------------------------------------------------
# timeout


def test_timeout_stalls_requests_until_removed(gate, cluster):
    rule = gate.add({"type": "timeout", "client_id": "stall-.*"})
    raw_rule = gate.add({"type": "timeout", "client_id": "hang-raw"})

    # librdkafka: every message times out...
    p = producer(gate.bootstrap, client_id="stall-1",
                 **{"socket.timeout.ms": 1000, "message.timeout.ms": 5000})
    d = Deliveries()
    for v in values("s", 5):
        p.produce("a1", v, on_delivery=d)
    p.poll(0)

    # ...meanwhile, raw: once kgate has applied the fault to the connection, the socket stays
    # open but nothing comes back (what a stalled request looks like)...
    with socket.create_connection(("127.0.0.1", gate.bootstrap_port), timeout=10) as s:
        s.sendall(metadata_v1_topics(1, [], "hang-raw"))
        wait_for(injected_at_least(gate, raw_rule["id"], 1), 30, 0.05,
                 "the timeout rule to take the raw connection")
        got, closed = recv_all_until_closed(s, 0.5)
    assert got == b"" and not closed
    # ...and another client id is served.
    produce_ok(producer(gate.bootstrap, client_id="free-1"), "b1", values("free", 5))

    def all_reported():
        p.poll(0.05)
        return len(d.reports) == 5

    wait_for(all_reported, 30, interval=0, what="the stalled messages to time out")
    assert set(d.error_codes()) <= {KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT}, d.errors
    assert len(d.errors) == 5
    assert read_topic(cluster.bootstrap, "a1", 1).values == []

    # Removed: the same producer's next connections are served.
    gate.remove(rule["id"])
    produce_ok(p, "a1", values("t", 5), flush_timeout=30)
    assert read_topic(cluster.bootstrap, "a1", 1).values == values("t", 5)


# ---------------------------------------------------------------------------------------------
# bandwidth


def test_bandwidth_bounds_a_consumer_transfer(gate, cluster):
    kib_per_s = 64
    sent = values("bw", 48, size=4096)  # 192 KiB of values
    produce_ok(producer(cluster.bootstrap, **{"linger.ms": 20}), "b1", sent)
    total = sum(len(v) for v in sent)

    rule = gate.add({"type": "bandwidth", "client_id": "bw-.*", "kib_per_s": kib_per_s,
                     "direction": "downstream"})
    start = time.monotonic()
    got = read_topic(gate.bootstrap, "b1", 1, until={0: len(sent)}, client_id="bw-reader")
    took = time.monotonic() - start
    assert got.values == sent
    # The bucket holds at most a quarter second's worth; allow a full second of slack.
    assert took >= total / (kib_per_s * 1024) - 1.0, f"{total} bytes in {took:.2f}s"
    assert gate.injected(rule["id"]) >= 1
    assert read_topic(gate.bootstrap, "b1", 1, client_id="free-reader").values == sent


def test_bandwidth_bounds_a_producer_transfer(gate, cluster):
    kib_per_s = 64
    gate.add({"type": "bandwidth", "client_id": "bw-.*", "kib_per_s": kib_per_s,
              "direction": "upstream"})
    sent = values("up", 40, size=4096)
    total = sum(len(v) for v in sent)
    p = producer(gate.bootstrap, client_id="bw-writer", **{"linger.ms": 20})
    start = time.monotonic()
    produce_ok(p, "a1", sent)
    took = time.monotonic() - start
    assert took >= total / (kib_per_s * 1024) - 1.0, f"{total} bytes in {took:.2f}s"
    assert read_topic(cluster.bootstrap, "a1", 1).values == sent
    produce_ok(producer(gate.bootstrap, client_id="free-writer"), "b1", sent)


# ---------------------------------------------------------------------------------------------
# slicer


def test_slicer_splits_frames_and_data_arrives_intact(gate, cluster):
    rule = gate.add({"type": "slicer", "client_id": "slice-.*", "bytes": 16, "delay_us": 5000})

    with socket.create_connection(("127.0.0.1", gate.bootstrap_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame = metadata_v1_topics(1, [], "slice-raw")
        start = time.monotonic()
        s.sendall(frame)
        chunks = []
        size = None
        buf = b""
        while size is None or len(buf) < 4 + size:
            chunk = s.recv(65536)
            assert chunk, "connection closed mid-response"
            chunks.append(len(chunk))
            buf += chunk
            if size is None and len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big")
        took = time.monotonic() - start
    slices = -(-len(buf) // 16)
    assert len(chunks) >= 2, chunks
    # Upstream and downstream slices are each 5 ms apart.
    assert took >= (slices - 1) * 0.005, f"{len(buf)} bytes in {took:.3f}s"

    # Clients through coarser slices (the same fault, less time).
    gate.remove(rule["id"])
    rule = gate.add({"type": "slicer", "client_id": "slice-.*", "bytes": 100, "delay_us": 200})
    sent = values("sl", 30, size=300)
    p = producer(gate.bootstrap, client_id="slice-writer")
    produce_ok(p, "a3", sent)
    got = read_topic(gate.bootstrap, "a3", 3, client_id="slice-reader")
    assert sorted(got.values) == sorted(sent)
    assert gate.injected(rule["id"]) >= 2


# ---------------------------------------------------------------------------------------------
# limit-data


def send_until_closed(port, client_id, rounds=100):
    """Metadata requests one after another on one connection; returns (bytes received, closed)."""
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for corr in range(1, rounds + 1):
            try:
                s.sendall(metadata_v1_topics(corr, [], client_id))
                size = None
                need = 4
                while need > 0:
                    chunk = s.recv(need)
                    if not chunk:
                        return bytes(got), True
                    got += chunk
                    need -= len(chunk)
                    if need == 0 and size is None:
                        size = int.from_bytes(got[-4:], "big")
                        need = size
            except (BrokenPipeError, ConnectionResetError):
                return bytes(got), True
    return bytes(got), False


def test_limit_data_closes_after_n_bytes(gate, cluster):
    limit = 1000
    gate.add({"type": "limit-data", "client_id": "lim-raw", "bytes": limit,
              "direction": "downstream"})
    got, closed = send_until_closed(gate.bootstrap_port, "lim-raw")
    assert closed, f"still open after {len(got)} bytes"
    assert len(got) == limit, f"closed after {len(got)} bytes, limit {limit}"
    # Another client id on the same port is not limited.
    got, closed = send_until_closed(gate.bootstrap_port, "unlimited", rounds=20)
    assert not closed and len(got) > limit


def test_limit_data_client_reconnects_and_gets_everything(gate, cluster):
    sent = values("lim", 60, size=1024)
    p = producer(cluster.bootstrap, **{"linger.ms": 0, "batch.num.messages": 1})
    produce_ok(p, "b1", sent)
    gate.add({"type": "limit-data", "client_id": "lim-.*", "bytes": 16384,
              "direction": "downstream"})
    got = read_topic(gate.bootstrap, "b1", 1, until={0: len(sent)}, client_id="lim-reader",
                     **{"fetch.max.bytes": 4096, "max.partition.fetch.bytes": 4096,
                        "message.max.bytes": 4096, "receive.message.max.bytes": 8192})
    assert got.values == sent
    closes = gate.stderr_text().count("chaos limit-data")
    assert closes >= 2, f"{closes} connection(s) closed by limit-data"
