"""auth: passthrough (issue 8, item 4): identities live in the clusters. Clients log in through
kgate to the active cluster (here each "cluster" is a kgate with `auth: gateway` and a TLS
listener in front of a mock cluster, with the same users on both sides, as replicated SCRAM
credentials would be); kgate reaches them over TLS, learns each client's principal from the
exchange, and after a failover the clients log in to the other side by themselves."""

import threading
import time

import pytest
from confluent_kafka import KafkaError, Producer

from kghelpers import wait_for
from secgate import librdkafka_auth, librdkafka_sasl
from tlsgate import Gate, Pki, listener_tls_yaml

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return Pki(d)


@pytest.fixture
def sides(tmp_path, make_cluster, pki):
    """Two secured clusters (east, west): {name: Gate}."""
    gates = {}
    for name in ("east", "west"):
        dc = make_cluster(name)
        work = tmp_path / f"secured-{name}"
        work.mkdir()
        g = Gate(work, [f'{name}: {{ bootstrap: "{dc.bootstrap}" }}'],
                 [f"primary: {name}", "node_ids: 1-3", "auth: gateway",
                  *listener_tls_yaml(pki), "  sasl: [SCRAM-SHA-256, SCRAM-SHA-512, PLAIN]"])
        for user, pw in USERS.items():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                g.users_add(user, mech, pw)
        gates[name] = g
    yield gates
    errors = []
    for g in gates.values():
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def front(tmp_path, sides, pki):
    work = tmp_path / "front"
    work.mkdir()
    clusters = [f'{n}: {{ bootstrap: "127.0.0.1:{g.base}", tls: {{ ca_file: {pki.ca.pem} }} }}'
                for n, g in sides.items()]
    g = Gate(work, clusters, ["primary: east", "secondary: west", "auth: passthrough"])
    wait_for(lambda: all(g.cluster_status(n)["up"] for n in sides), 20,
             what="both secured clusters probed")
    yield g
    g.stop()


def test_clients_log_in_to_the_cluster_through_kgate(front, sides):
    """SCRAM-SHA-256/512 and PLAIN reach the cluster's own login; a wrong password gets the
    cluster's refusal; kgate learns who logged in: a chaos rule scoped to User:bob acts on
    bob's produce only."""
    bootstrap = f"127.0.0.1:{front.base}"
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        assert librdkafka_auth(bootstrap, librdkafka_sasl(mech, "alice", USERS["alice"])) == []
    errs = librdkafka_auth(bootstrap, librdkafka_sasl("SCRAM-SHA-512", "alice", "wrong"))
    assert errs and "invalid credentials" in errs[0].str().lower(), errs
    assert sides["east"].metric("kgate_sasl_authentications_total", vcluster="default",
                                mechanism="SCRAM-SHA-512", result="failed") >= 1
    reply = front.admin("POST", "/v1/chaos/rules", {
        "type": "broken-brokers", "principal": "User:bob", "api": ["Produce"],
        "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    assert reply.status == 201, reply
    results = {}
    for user in USERS:
        errs = []
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                      "message.send.max.retries": 0,
                      **librdkafka_sasl("SCRAM-SHA-512", user, USERS[user])})
        p.produce("sec1", b"x", on_delivery=lambda e, m: errs.append(e))
        assert p.flush(30) == 0
        results[user] = errs
    assert results["alice"] == [None]
    assert results["bob"][0] is not None and \
        results["bob"][0].code() == KafkaError.NOT_ENOUGH_REPLICAS, results


def test_failover_clients_log_in_to_the_other_side(front, sides):
    """A SCRAM producer runs across a failover and a failback: kgate closes its connections,
    it reconnects and logs in to the new side with the same credentials; every record ends
    acked, and both sides saw alice log in."""
    bootstrap = f"127.0.0.1:{front.base}"
    logins = lambda side: sides[side].metric(  # noqa: E731
        "kgate_sasl_authentications_total", vcluster="default", mechanism="SCRAM-SHA-512",
        result="ok")
    west_before = logins("west")
    acked, errors, stop = [], [], threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                      **librdkafka_sasl("SCRAM-SHA-512", "alice", USERS["alice"])})
        i = 0
        while not stop.is_set():
            p.produce("fo3", f"r{i}".encode(),
                      on_delivery=lambda e, m: (errors if e else acked).append(e or m))
            p.poll(0.02)
            i += 1
            time.sleep(0.01)
        assert p.flush(60) == 0

    t = threading.Thread(target=produce)
    t.start()
    try:
        wait_for(lambda: len(acked) > 20, 30, what="acks on east")
        reply = front.admin("POST", "/v1/vclusters/default/failover", {"reason": "drill"})
        assert reply.status == 200, reply
        n = len(acked)
        wait_for(lambda: len(acked) > n + 20, 60, what="acks on west")
        assert logins("west") > west_before
        reply = front.admin("POST", "/v1/vclusters/default/failback", {"reason": "back"})
        assert reply.status == 200, reply
        n = len(acked)
        wait_for(lambda: len(acked) > n + 20, 60, what="acks on east again")
    finally:
        stop.set()
        t.join(90)
    assert errors == [], errors[:3]
