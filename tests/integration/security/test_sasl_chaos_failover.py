"""The authenticated principal on the connection: chaos rules scoped by principal, the
auth-failure fault failing real SASL exchanges; and a failover, after which SASL clients
reconnect and re-authenticate to kgate by themselves."""

import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer

from kghelpers import wait_for
from secgate import librdkafka_auth, librdkafka_sasl


def auth_errors(gate, user, password):
    return librdkafka_auth(gate.bootstrap, librdkafka_sasl("SCRAM-SHA-256", user, password))


def test_auth_failure_rule_fails_matching_principal_only(gate):
    reply = gate.admin("POST", "/v1/chaos/rules",
                       {"type": "auth-failure", "principal": "User:alice", "for": "5m"})
    assert reply.status == 201, reply
    rule = reply.json["id"]
    errs = auth_errors(gate, "alice", "alice-secret")
    assert errs and "chaos auth-failure" in errs[0].str(), errs
    assert auth_errors(gate, "bob", "bob-secret") == []
    listed = gate.admin("GET", f"/v1/chaos/rules/{rule}").json
    assert listed["injected"] >= 1
    assert gate.admin("DELETE", f"/v1/chaos/rules/{rule}").status == 204
    assert auth_errors(gate, "alice", "alice-secret") == []


def test_principal_scoped_rule_acts_on_that_principal(gate):
    """A broken-brokers rule scoped to User:bob rejects bob's produce, not alice's."""
    reply = gate.admin("POST", "/v1/chaos/rules", {
        "type": "broken-brokers", "principal": "User:bob", "api": ["Produce"],
        "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    assert reply.status == 201, reply
    results = {}
    for user in ("alice", "bob"):
        errs = []
        p = Producer({"bootstrap.servers": gate.bootstrap, "acks": "all",
                      "message.send.max.retries": 0,
                      **librdkafka_sasl("SCRAM-SHA-512", user, f"{user}-secret")})
        p.produce("sec1", b"x", on_delivery=lambda e, m: errs.append(e))
        p.flush(30)
        results[user] = errs
    assert results["alice"] == [None]
    assert results["bob"] and results["bob"][0] is not None and \
        results["bob"][0].code() == KafkaError.NOT_ENOUGH_REPLICAS


def test_failover_sasl_clients_reauthenticate(make_cluster, make_gate):
    east, west = make_cluster("east"), make_cluster("west")
    gate = make_gate({"east": east, "west": west})
    gate.cli("add", "alice", "--mechanism", "SCRAM-SHA-512", "--password-stdin", input="pw\n")
    conf = librdkafka_sasl("SCRAM-SHA-512", "alice", "pw")
    acked, errors = [], []
    p = Producer({"bootstrap.servers": gate.bootstrap, "acks": "all", "linger.ms": 5, **conf})
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            p.produce("fo3", b"fo-%d" % i,
                      on_delivery=lambda e, m: (errors if e else acked).append(e or m.value()))
            p.poll(0.02)
            i += 1
        p.flush(30)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(acked) >= 20, timeout=30, what="acks before the switch")
        auths = gate.successes("SCRAM-SHA-512")
        reply = gate.admin("POST", "/v1/vclusters/default/failover", {"reason": "test"})
        assert reply.status == 200, reply
        at_switch = len(acked)
        wait_for(lambda: len(acked) >= at_switch + 50, timeout=60, what="acks after the switch")
        assert gate.successes("SCRAM-SHA-512") > auths, "the client did not re-authenticate"
    finally:
        stop.set()
        t.join(60)
    # What was acknowledged after the switch is on west: read it there directly.
    c = Consumer({"bootstrap.servers": west.bootstrap, "group.id": "check",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["fo3"])
    got = set()
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    c.close()
    assert len(got) >= 50, len(got)
    # A consumer group over SASL works on the new side too.
    c = Consumer({"bootstrap.servers": gate.bootstrap, "group.id": "after", **conf,
                  "auto.offset.reset": "earliest"})
    c.subscribe(["fo3"])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 50 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen += 1
    c.close()
    assert seen >= 50
