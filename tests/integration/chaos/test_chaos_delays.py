"""latency, slow-broker, slow-clients: matching requests or responses are held. Affected round
trips take at least the configured delay: only that lower bound is timed, which a loaded machine
cannot break (it only makes round trips slower). No upper bound is asserted anywhere: that
unaffected traffic is not held is shown by the rules' counters, which count every request they
held, not by timing it."""

import socket
import struct
import time

from confluent_kafka import TopicPartition

from chaoslib import (consumer, fastest_metadata, metadata_v1_topics, partition_leaders,
                      produce_ok, producer, recv_frame, timed_produce, values, warm_up)
from kghelpers import encode_request

DELAY = 0.4


def min_produce_time(p, topic, rounds=3, partition=None):
    times = []
    for i in range(rounds):
        took, err = timed_produce(p, topic, b"timed-%d" % i, partition=partition)
        assert err is None, err
        times.append(took)
    return min(times)


def test_request_latency_on_a_topic(gate, cluster):
    p = producer(gate.bootstrap, client_id="timer", **{"linger.ms": 0})
    warm_up(p, "a1", 1)
    warm_up(p, "b1", 1)
    rule = gate.add({"type": "latency", "topic": "a1", "delay_ms": int(DELAY * 1000)})
    assert min_produce_time(p, "a1") >= DELAY
    min_produce_time(p, "b1")  # out of scope: completes (no upper bound asserted)
    assert gate.injected(rule["id"]) >= 3


def test_response_latency_on_a_topic(gate, cluster):
    p = producer(gate.bootstrap, client_id="timer", **{"linger.ms": 0})
    warm_up(p, "a1", 1)
    warm_up(p, "b1", 1)
    rule = gate.add({"type": "latency", "topic": "a1", "delay_ms": int(DELAY * 1000),
                     "on": "response"})
    assert min_produce_time(p, "a1") >= DELAY
    min_produce_time(p, "b1")
    assert gate.injected(rule["id"]) >= 3
    # The writes were not held back, only their answers: all three timed records are stored.
    c = consumer(cluster.bootstrap)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition("a1", 0), timeout=20)
    finally:
        c.close()
    assert hi - lo == 4  # warm-up + 3


def test_delays_of_several_rules_add_up(gate, cluster):
    p = producer(gate.bootstrap, client_id="timer", **{"linger.ms": 0})
    warm_up(p, "a1", 1)
    gate.add({"type": "latency", "topic": "a1", "delay_ms": 200})
    gate.add({"type": "latency", "topic": "a.*", "delay_ms": 300, "on": "response"})
    assert min_produce_time(p, "a1") >= 0.5


def test_metadata_latency_scoped_by_api_and_client_id(gate):
    rule = gate.add({"type": "latency", "api": ["Metadata"], "client_id": "slow-md",
                     "delay_ms": int(DELAY * 1000), "on": "response"})
    assert fastest_metadata(gate.bootstrap_port, "slow-md", rounds=3) >= DELAY
    assert gate.injected(rule["id"]) == 3  # each of the three requests held
    fastest_metadata(gate.bootstrap_port, "other-client", rounds=3)
    assert gate.injected(rule["id"]) == 3  # none of another client's


def test_held_response_keeps_the_connection_order(gate):
    """Responses on one connection come back in request order: an ApiVersions answer (out of the
    rule's scope) that follows a delayed Metadata waits for it."""
    rule = gate.add({"type": "latency", "api": ["Metadata"], "delay_ms": int(DELAY * 1000),
                     "on": "response"})
    with socket.create_connection(("127.0.0.1", gate.bootstrap_port), timeout=30) as s:
        start = time.monotonic()
        s.sendall(metadata_v1_topics(1, [], "ordered") + encode_request(18, 0, 2, b"", "ordered")
                  + metadata_v1_topics(3, [], "ordered") + encode_request(18, 0, 4, b"", "ordered"))
        order = []
        for _ in range(4):
            frame = recv_frame(s)
            order.append((struct.unpack(">i", frame[:4])[0], time.monotonic() - start))
    assert [corr for corr, _ in order] == [1, 2, 3, 4]
    assert order[1][1] >= DELAY, "the ApiVersions response overtook the held Metadata response"
    assert order[3][1] >= DELAY
    assert gate.injected(rule["id"]) == 2, "only the two Metadata responses are held"


# ---------------------------------------------------------------------------------------------
# slow-broker


def test_slow_broker_slows_only_that_broker(gate, cluster):
    leaders = partition_leaders(gate.bootstrap, "a6")
    slow = leaders[0]
    fast_parts = [p for p, n in leaders.items() if n != slow]
    slow_parts = [p for p, n in leaders.items() if n == slow]
    assert fast_parts, f"every partition is led by broker {slow}: {leaders}"
    p = producer(gate.bootstrap, client_id="timer", **{"linger.ms": 0})
    warm_up(p, "a6", 6)

    rule = gate.add({"type": "slow-broker", "broker": slow, "min_ms": 300, "max_ms": 450})
    for part in slow_parts:
        assert min_produce_time(p, "a6", rounds=2, partition=part) >= 0.3
    for part in fast_parts:
        min_produce_time(p, "a6", rounds=2, partition=part)  # completes
    assert gate.injected(rule["id"]) >= 1

    # Every request the broker serves is slow, Metadata included; another broker's are not.
    assert fastest_metadata(gate.broker_port(slow), "raw") >= 0.3
    fastest_metadata(gate.broker_port(leaders[fast_parts[0]]), "raw")


# ---------------------------------------------------------------------------------------------
# slow-clients


def test_slow_clients_slows_matching_producers(gate, cluster):
    slow = producer(gate.bootstrap, client_id="slow-1", **{"linger.ms": 0})
    fast = producer(gate.bootstrap, client_id="fast-1", **{"linger.ms": 0})
    warm_up(slow, "a1", 1)
    warm_up(fast, "a1", 1)
    rule = gate.add({"type": "slow-clients", "client_id": "slow-.*", "min_ms": 300,
                     "max_ms": 400, "apis": ["produce"]})
    assert min_produce_time(slow, "a1") >= 0.3
    min_produce_time(fast, "a1")
    assert gate.injected(rule["id"]) >= 3


def test_slow_clients_on_fetch(gate, cluster):
    produce_ok(producer(cluster.bootstrap), "b1", values("f", 5))
    rule = gate.add({"type": "slow-clients", "client_id": "slow-reader", "min_ms": 500,
                     "max_ms": 500, "apis": ["fetch"]})

    def first_record_after(client_id):
        c = consumer(gate.bootstrap, client_id=client_id)
        try:
            # Metadata, ListOffsets etc. first, so the clock measures fetches only.
            c.get_watermark_offsets(TopicPartition("b1", 0), timeout=20)
            start = time.monotonic()
            c.assign([TopicPartition("b1", 0, 0)])
            deadline = start + 30
            while time.monotonic() < deadline:
                m = c.poll(0.1)
                if m is not None and m.error() is None:
                    return time.monotonic() - start, m.value()
            raise AssertionError(f"{client_id}: no record within 30s")
        finally:
            c.close()

    took, value = first_record_after("slow-reader")
    assert value == values("f", 5)[0]
    assert took >= 0.5
    assert first_record_after("quick-reader")[1] == values("f", 5)[0]
    assert gate.injected(rule["id"]) >= 1
