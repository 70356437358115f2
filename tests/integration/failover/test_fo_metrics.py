"""/metrics shows a switch: the active side, the epoch, the switch count and duration, client
connections (closed by the switch), requests by API, and each cluster's up/down state."""

import socket

import pytest

from fohelpers import metric, wait_for
from kghelpers import api_versions_v0, metadata_v1_all_topics, round_trip, wait_closed_by_peer


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
    m = kg.metrics()
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="east") == 0
    assert metric(m, "kgate_vcluster_active", vcluster="default", cluster="west") == 1
    assert metric(m, "kgate_vcluster_epoch", vcluster="default") == 1
    assert metric(m, "kgate_vcluster_switches_total", vcluster="default") == 1
    assert metric(m, "kgate_vcluster_last_switch_seconds", vcluster="default") > 0
    assert metric(m, "kgate_client_connections", vcluster="default") == 0

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
