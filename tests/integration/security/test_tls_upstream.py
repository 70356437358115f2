"""Credentials per cluster, upstream (issue 8, item 3): kgate A reaches a secured "cluster" —
kgate B with `auth: gateway` behind HAProxy terminating TLS (see tlsgate.py) — with TLS, the
broker's name checked, an optional client certificate, and its own SASL login; a wrong password
is a cluster health problem (status, metric, audit) that refuses a failover; logins are renewed
before the broker's session ends while traffic flows."""

import time

import pytest
from confluent_kafka import KafkaError, Producer

from kghelpers import run, wait_for
from secgate import librdkafka_sasl
from tlsgate import Gate, Pki, Terminator, listener_tls_yaml

KGATE_USER, KGATE_PASSWORD = "kgate-east", "east-secret"


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return Pki(d)


class Secured:
    """kgate B (SCRAM and PLAIN users) on 127.0.0.1, advertised as 127.0.0.2, behind HAProxy
    TLS on 127.0.0.2 (client certificates required when MTLS). .bootstrap is HAProxy's."""

    def __init__(self, tmp_path, cluster, pki, mtls=False, session_ms=0, cert=None):
        work = tmp_path / "secured"
        work.mkdir()
        listener = ["node_ids: 1-3", "auth: gateway", "listener:",
                    "  sasl: [SCRAM-SHA-256, SCRAM-SHA-512, PLAIN]",
                    "  allow_plain_without_tls: true  # HAProxy in front does the TLS"]
        if session_ms:
            listener.append(f"  sasl_session_ms: {session_ms}")
        self.gate = Gate(work, [f'east: {{ bootstrap: "{cluster.bootstrap}" }}'],
                         ["primary: east", *listener], hosts=("127.0.0.1", "127.0.0.2"),
                         advertised="127.0.0.2")
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            self.gate.users_add(KGATE_USER, mech, KGATE_PASSWORD)
        ports = [self.gate.base + i for i in range(4)]  # bootstrap, nodes 1-3
        self.terminator = Terminator(work, "127.0.0.2", ports,
                                     pki.combined(cert or pki.server, "terminator"),
                                     client_ca=pki.ca.pem if mtls else None)
        self.bootstrap = f"127.0.0.2:{self.gate.base}"

    def stop(self):
        self.terminator.stop()
        self.gate.stop()

    def logins(self, mechanism):
        return self.gate.metric("kgate_sasl_authentications_total", vcluster="default",
                                mechanism=mechanism, result="ok")


@pytest.fixture
def started(tmp_path):
    things = []
    yield things
    errors = []
    for t in reversed(things):
        try:
            t.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


def front(tmp_path, name, clusters, started, secondary=None, vc_extra=()):
    """kgate A: CLUSTERS is {name: [yaml lines of that cluster]}; the vcluster's primary is the
    first, SECONDARY its secondary; VC_EXTRA more lines of the vcluster."""
    work = tmp_path / name
    work.mkdir()
    lines = []
    for cname, body in clusters.items():
        lines.append(f"{cname}:")
        lines += [f"  {b}" for b in body]
    vc = [f"primary: {next(iter(clusters))}"] + ([f"secondary: {secondary}"] if secondary else [])
    vc += list(vc_extra)
    g = Gate(work, lines, vc)
    started.append(g)
    return g


def secured_cluster(secured, pki, mechanism="SCRAM-SHA-512", password=KGATE_PASSWORD,
                    client_cert=None, host=None, verify=True):
    tls = f"tls: {{ ca_file: {pki.ca.pem}"
    if client_cert:
        tls += f", cert_file: {client_cert[0]}, key_file: {client_cert[1]}"
    if not verify:
        tls += ", verify: false"
    bootstrap = secured.bootstrap if host is None else f"{host}:{secured.gate.base}"
    return [f'bootstrap: "{bootstrap}"', tls + " }",
            f"sasl: {{ mechanism: {mechanism}, username: {KGATE_USER}, password: {password} }}"]


def produce_and_consume(bootstrap, topic, prefix, count=5):
    values = [f"{prefix}-{i}".encode() for i in range(count)]
    run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "acks=all"], timeout=60,
        input=b"\n".join(values) + b"\n")
    got = run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q"],
              timeout=60).stdout.split()
    assert sorted(v for v in got if v.startswith(prefix.encode())) == values


def test_tls_and_scram_to_a_secured_cluster(tmp_path, cluster, pki, started):
    """Clients speak plaintext without credentials to kgate A; A speaks TLS (checked against the
    cluster's CA and name) and SCRAM-SHA-512 to every broker, through an independent
    terminator."""
    secured = Secured(tmp_path, cluster, pki)
    started.append(secured)
    before = secured.logins("SCRAM-SHA-512")
    a = front(tmp_path, "a", {"east": secured_cluster(secured, pki)}, started)
    wait_for(lambda: a.cluster_status("east")["up"], 20, what="A's probe through TLS + SASL")
    produce_and_consume(f"127.0.0.1:{a.base}", "sec3", "scram512")
    # The probe and every broker connection log in: bootstrap + at least one broker.
    assert secured.logins("SCRAM-SHA-512") >= before + 3
    status = a.cluster_status("east")
    assert status["auth_failed"] is False and status["last_error"] == ""
    assert KGATE_PASSWORD not in a.log()


def test_mutual_tls_upstream(tmp_path, cluster, pki, started):
    """A terminator that requires client certificates: kgate without one is refused at the
    handshake (the cluster is down, with TLS's reason), with one it works."""
    secured = Secured(tmp_path, cluster, pki, mtls=True)
    started.append(secured)
    without = front(tmp_path, "without", {"east": secured_cluster(
        secured, pki, mechanism="SCRAM-SHA-256")}, started)
    with_cert = front(tmp_path, "with", {"east": secured_cluster(
        secured, pki, mechanism="SCRAM-SHA-256", client_cert=pki.alice)}, started)
    wait_for(lambda: with_cert.cluster_status("east")["up"], 20, what="the probe with a cert")
    produce_and_consume(f"127.0.0.1:{with_cert.base}", "sec1", "mtls")
    status = wait_for(lambda: (s := without.cluster_status("east"))["last_error"] and s, 20,
                      what="the probe without a cert to fail")
    assert not status["up"] and "TLS" in status["last_error"], status


def test_broker_name_is_checked(tmp_path, cluster, pki, started):
    """The terminator's certificate names other hosts than the one kgate dials: the handshake
    fails on the name (and `verify: false` is the operator's explicit way around it)."""
    wrong = pki.ca.issue("wrongname", pki_name("broker.elsewhere"), dns=["broker.elsewhere"])
    secured = Secured(tmp_path, cluster, pki, cert=wrong)
    started.append(secured)
    checked = front(tmp_path, "checked", {"east": secured_cluster(secured, pki)}, started)
    status = wait_for(lambda: (s := checked.cluster_status("east"))["last_error"] and s, 20,
                      what="the probe to fail on the name")
    assert not status["up"] and "mismatch" in status["last_error"], status
    unchecked = front(tmp_path, "unchecked", {"east": secured_cluster(secured, pki, verify=False)},
                      started)
    wait_for(lambda: unchecked.cluster_status("east")["up"], 20, what="verify: false")


def pki_name(cn):
    from tlsgate import _name
    return _name(cn)


def test_wrong_password_is_a_health_problem_and_refuses_failover(tmp_path, cluster, pki,
                                                                  started, make_cluster):
    """West's credentials are wrong: west shows auth_failed (status, metric, audit) and a
    failover to it is refused without force; clients on east are not affected."""
    secured = Secured(tmp_path, cluster, pki)
    started.append(secured)
    east = make_cluster("plain-east")
    a = front(tmp_path, "a", {
        "east": [f'bootstrap: "{east.bootstrap}"'],
        "west": secured_cluster(secured, pki, password="not-the-password")}, started,
        secondary="west")
    status = wait_for(lambda: (s := a.cluster_status("west"))["auth_failed"] and s, 20,
                      what="west's auth failure")
    assert not status["up"] and "SASL SCRAM-SHA-512 as kgate-east" in status["last_error"]
    assert a.metric("kgate_cluster_auth_failed", cluster="west") == 1
    assert a.metric("kgate_cluster_auth_failed", cluster="east") == 0
    wait_for(lambda: a.audit("cluster.auth_failed"), 20, what="the audit entry")
    assert a.audit("cluster.auth_failed")[0]["details"]["cluster"] == "west"
    reply = a.admin("POST", "/v1/vclusters/default/failover", {"reason": "drill"})
    assert reply.status == 409 and "SASL" in reply.text, reply
    produce_and_consume(f"127.0.0.1:{a.base}", "sec1", "still-east")
    assert "not-the-password" not in a.log()


def test_logins_renewed_before_the_session_ends(tmp_path, cluster, pki, started):
    """B grants 1.5 s sessions (KIP-368) and closes connections that outlive them; kgate A logs
    in again (PLAIN here) on its connections while a producer sends for 6 s: every record is
    acked, and B never had to close a connection for an expired session."""
    secured = Secured(tmp_path, cluster, pki, session_ms=1500)
    started.append(secured)
    a = front(tmp_path, "a", {"east": secured_cluster(secured, pki, mechanism="PLAIN")}, started)
    wait_for(lambda: a.cluster_status("east")["up"], 20, what="A's probe")
    before = secured.logins("PLAIN")
    results = []
    p = Producer({"bootstrap.servers": f"127.0.0.1:{a.base}", "acks": "all", "linger.ms": 5})
    deadline = time.monotonic() + 6
    i = 0
    while time.monotonic() < deadline:
        p.produce("sec3", f"r{i}".encode(), on_delivery=lambda e, m: results.append(e))
        p.poll(0.02)
        i += 1
        time.sleep(0.02)
    assert p.flush(30) == 0
    assert len(results) == i and all(e is None for e in results), \
        [e for e in results if e][:3]
    # B closes (and logs) a connection whose session ended without a new login.
    assert "expired without re-authentication" not in secured.gate.log()
    assert secured.logins("PLAIN") > before


def test_credential_swap(tmp_path, cluster, pki, started):
    """sasl.principals: alice, logged in to kgate A as herself, reaches the cluster as
    alice-east (her quotas, ACLs and audit there stay hers); bob, who has no entry, as kgate's
    own user. A chaos rule at the cluster scoped to User:alice-east shows who arrived."""
    secured = Secured(tmp_path, cluster, pki)
    started.append(secured)
    secured.gate.users_add("alice-east", "SCRAM-SHA-512", "alice-east-pw")
    east = secured_cluster(secured, pki) + [
        "sasl_principals_placeholder"]
    east[-2] = (f"sasl: {{ mechanism: SCRAM-SHA-512, username: {KGATE_USER}, "
                f"password: {KGATE_PASSWORD}, principals: {{ alice: {{ username: alice-east, "
                "password: alice-east-pw } } }")
    east.pop()
    a = front(tmp_path, "a", {"east": east}, started,
              vc_extra=["auth: gateway", "listener:", "  sasl: [SCRAM-SHA-512]"])
    for user in ("alice", "bob"):
        a.users_add(user, "SCRAM-SHA-512", user + "-pw")
    wait_for(lambda: a.cluster_status("east")["up"], 20, what="A's probe")
    reply = secured.gate.admin("POST", "/v1/chaos/rules", {
        "type": "broken-brokers", "principal": "User:alice-east", "api": ["Produce"],
        "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    assert reply.status == 201, reply
    results = {}
    for user in ("alice", "bob"):
        errs = []
        p = Producer({"bootstrap.servers": f"127.0.0.1:{a.base}", "acks": "all",
                      "message.send.max.retries": 0,
                      **librdkafka_sasl("SCRAM-SHA-512", user, user + "-pw")})
        p.produce("sec1", b"x", on_delivery=lambda e, m: errs.append(e))
        assert p.flush(30) == 0
        results[user] = errs
    assert results["bob"] == [None]
    assert results["alice"][0] is not None and \
        results["alice"][0].code() == KafkaError.NOT_ENOUGH_REPLICAS, results
    assert "alice-east-pw" not in a.log()
