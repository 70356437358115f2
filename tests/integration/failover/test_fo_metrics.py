"""/metrics shows a switch: the active side, the epoch, the switch count and duration, client
connections (closed by the switch), requests by API, and each cluster's up/down state.
No wall-clock bounds: every wait polls for an event, with a deadline that only guards against a
hang and fails with what was awaited."""

import socket
import struct

import pytest

from fohelpers import metric, wait_for
from kghelpers import (api_versions_v0, encode_request, metadata_v1_all_topics, recv_frame,
                       round_trip, wait_closed_by_peer)


def open_clients(kg, n):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", kg.ports["default"]), timeout=10)
        round_trip(s, api_versions_v0(1))
        round_trip(s, metadata_v1_all_topics(2))
        socks.append(s)
    return socks


def value(kg, name, **labels):
    return metric(kg.metrics(), name, **labels)


@pytest.mark.guard(120)
def test_metrics_follow_a_failover(make_clusters, make_kgate):
    clusters = make_clusters()
    kg = make_kgate(clusters)
    m = kg.metrics()
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="east",
                  role="primary") == 1
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="west",
                  role="secondary") == 0
    assert metric(m, "kgate_vcluster_epoch", vcluster="default") == 0
    assert metric(m, "kgate_vcluster_switches_total", vcluster="default") == 0
    assert metric(m, "kgate_cluster_up", cluster="east") == 1
    assert metric(m, "kgate_cluster_up", cluster="west") == 1
    assert metric(m, "kgate_cluster_probe_latency_seconds", cluster="west") > 0
    metadata_before = metric(m, "kgate_requests_total", vcluster="default", api="Metadata") \
        if any(n == "kgate_requests_total" and l.get("api") == "Metadata" for n, l, _ in m) else 0

    socks = open_clients(kg, 3)
    wait_for(lambda: value(kg, "kgate_client_connections", vcluster="default") == 3, 10,
             what="3 client connections in /metrics")
    assert kg.vcluster_status("default")["client_connections"] == 3
    assert value(kg, "kgate_requests_total", vcluster="default", api="Metadata") \
        == metadata_before + 3

    reply, _, _ = kg.switch("default", to="west", reason="metrics test")
    assert reply.status == 200 and reply.json["connections_closed"] >= 3, reply
    for s in socks:
        assert wait_closed_by_peer(s, 10), "the switch left a client connection open"
        s.close()
    # The gauge follows the closes kgate made (the event), not a moment in time.
    wait_for(lambda: value(kg, "kgate_client_connections", vcluster="default") == 0, 10,
             what="kgate_client_connections 0 after the switch closed every client")
    m = kg.metrics()
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="east") == 0
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="west") == 1
    assert metric(m, "kgate_vcluster_epoch", vcluster="default") == 1
    assert metric(m, "kgate_vcluster_switches_total", vcluster="default") == 1
    # The duration shown is the one the switch reported (a value check, not a time bound).
    assert metric(m, "kgate_vcluster_last_switch_seconds", vcluster="default") * 1000.0 == \
        pytest.approx(reply.json["duration_ms"], abs=0.01), reply

    # Clients come back and are counted again; the failback counts as a switch too.
    socks = open_clients(kg, 2)
    wait_for(lambda: value(kg, "kgate_client_connections", vcluster="default") == 2, 10,
             what="2 client connections after the failover")
    reply, _, _ = kg.switch("default", failback=True, reason="metrics test back")
    assert reply.status == 200 and reply.json["connections_closed"] >= 2, reply
    for s in socks:
        s.close()
    m = kg.metrics()
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="east") == 1
    assert metric(m, "kgate_vcluster_epoch", vcluster="default") == 2
    assert metric(m, "kgate_vcluster_switches_total", vcluster="default") == 2

    # A cluster going down shows in kgate_cluster_up.
    assert clusters["west"].stop() == 0
    wait_for(lambda: value(kg, "kgate_cluster_up", cluster="west") == 0, 30,
             what="kgate_cluster_up{cluster=west} 0")
    assert value(kg, "kgate_cluster_up", cluster="east") == 1


def fetch_v4(corr_id, topic, partition, offset, max_wait_ms):
    t = topic.encode()
    body = struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iiqi", 1, partition, offset, 1 << 20)
    return encode_request(1, 4, corr_id, body)


def partition_leader(bootstrap, topic, partition):
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=15)
    return md.topics[topic].partitions[partition].leader


def fetch_count(kg, metric_name):
    return sum(v for n, l, v in kg.metrics()
               if n == metric_name and l.get("api") == "Fetch" and l.get("vcluster") == "default")


@pytest.mark.guard(120)
def test_request_in_flight_at_the_switch_gets_kgates_answer(make_clusters, make_kgate):
    """A Fetch the old cluster holds (no data yet, a max wait far beyond the test's guard) when
    the switch happens: no answer from the old cluster ever reaches the client; at
    switch.grace_ms kgate answers it in the old side's place (NOT_LEADER_OR_FOLLOWER for the
    partition, the Fetch's correlation id), closes the connection, and counts it in
    kgate_switch_answers_total."""
    clusters = make_clusters()
    kg = make_kgate(clusters)
    leader = partition_leader(kg.bootstrap("default"), "fo-misc", 0)
    requests_before = fetch_count(kg, "kgate_requests_total")
    s = socket.create_connection(("127.0.0.1", kg.ports["default"] + 1 + leader), timeout=10)
    s.sendall(fetch_v4(7, "fo-misc", 0, 0, 300000))
    # The event: kgate received the Fetch (and passed it on); the old cluster holds it.
    wait_for(lambda: fetch_count(kg, "kgate_requests_total") >= requests_before + 1, 30,
             what="kgate to count the Fetch in kgate_requests_total")
    s.setblocking(False)
    try:
        early = s.recv(1)
    except BlockingIOError:
        early = None
    assert early is None, f"the Fetch was answered before the switch ({early!r})"
    reply, _, _ = kg.switch("default", to="west", reason="in-flight fetch")
    assert reply.status == 200 and reply.json["connections_closed"] >= 1, reply
    s.setblocking(True)
    s.settimeout(30)  # hang guard only: kgate answers at switch.grace_ms
    frame = recv_frame(s)
    # Fetch v4 response: correlation id, throttle, [topic, [partition, error, ...]]
    corr, _, n_topics, name_len = struct.unpack_from(">iiih", frame, 0)
    name = frame[14:14 + name_len].decode()
    n_parts, partition, error = struct.unpack_from(">iih", frame, 14 + name_len)
    assert (corr, n_topics, name, n_parts, partition, error) == (7, 1, "fo-misc", 1, 0, 6)
    assert s.recv(1) == b"", "the connection is still open behind kgate's answer"
    s.close()
    wait_for(lambda: fetch_count(kg, "kgate_switch_answers_total") >= 1, 10,
             what="kgate's answer in kgate_switch_answers_total")


@pytest.mark.guard(60)
def test_hung_cluster_last_error_says_it_timed_out(make_clusters, make_kgate):
    """A cluster that accepts connections but never answers (SIGSTOPped: a hung region) is
    reported down; its last error must tell the on-call engineer that the probe timed out, and
    where. (Seen instead: "ApiVersions: Resource temporarily unavailable", the text of the
    EAGAIN left by the probe's timeout, which reads like resource exhaustion in kgate.)"""
    clusters = make_clusters()
    kg = make_kgate(clusters)
    clusters["west"].freeze()
    kg.wait_cluster_up("west", False)
    error = kg.cluster_status("west")["last_error"]
    clusters["west"].thaw()
    kg.wait_cluster_up("west", True)
    assert "timed out" in error.lower() or "timeout" in error.lower(), error
    ports = [hp.rsplit(":", 1)[1] for hp in clusters["west"].bootstrap.split(",")]
    assert any(p in error for p in ports), f"the error does not say which broker: {error}"
