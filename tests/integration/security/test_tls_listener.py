"""TLS towards clients (issue 8, item 1): real clients over SSL, plain and TLS ports side by side,
mTLS with principal mapping, revoked / expired / unknown-CA certificates, certificate reload
without a restart, and bad input on a TLS port that harms no other connection."""

import os
import socket
import ssl
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from kghelpers import run, wait_for
from tlsgate import (Gate, Pki, kcat_ssl_args, librdkafka_ssl, listener_tls_yaml,
                     peer_certificate)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return Pki(d)


@pytest.fixture
def make_tls_gate(tmp_path, cluster):
    started = []

    def make(listener, **kwargs):
        work = tmp_path / f"gate{len(started)}"
        work.mkdir()
        g = Gate(work, [f'east: {{ bootstrap: "{cluster.bootstrap}" }}'],
                 ["primary: east", *listener], **kwargs)
        started.append(g)
        return g

    yield make
    errors = []
    for g in started:
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


def connects(bootstrap, conf, timeout=10):
    """True when a librdkafka client lists topics through BOOTSTRAP with CONF within TIMEOUT,
    False when it reported only transport/SSL errors until then."""
    errors = []
    a = AdminClient({"bootstrap.servers": bootstrap, "error_cb": errors.append,
                     "socket.timeout.ms": 2000, **conf})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            a.list_topics(timeout=1)
            return True
        except Exception:
            a.poll(0.1)
    assert errors, "no error reported by a client that could not connect"
    return False


def produce(bootstrap, conf, topic, values):
    """Delivery errors (None each when acked) of VALUES, produced with acks=all."""
    results = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", **conf})
    for v in values:
        p.produce(topic, v, on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    return results


def consume_group(bootstrap, conf, topic, group, count, timeout=40):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", **conf})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def test_clients_produce_and_consume_over_tls(pki, make_tls_gate):
    """kcat, confluent-kafka (librdkafka 2.0.2) and kafka-python over SSL to a TLS-only port;
    a plaintext client on that port gets nowhere and is counted."""
    g = make_tls_gate(listener_tls_yaml(pki))
    bootstrap = f"127.0.0.1:{g.base}"
    values = [f"kcat-{i}".encode() for i in range(5)]
    run(["kcat", "-P", "-b", bootstrap, "-t", "sec3", "-X", "acks=all", *kcat_ssl_args(pki)],
        timeout=60, input=b"\n".join(values) + b"\n")
    out = run(["kcat", "-C", "-b", bootstrap, "-t", "sec3", "-o", "beginning", "-e", "-q",
               *kcat_ssl_args(pki)], timeout=60).stdout.split()
    assert sorted(out) == sorted(values)

    conf = librdkafka_ssl(pki)
    ck = [f"ck-{i}".encode() for i in range(10)]
    assert produce(bootstrap, conf, "sec1", ck) == [None] * 10
    assert consume_group(bootstrap, conf, "sec1", "tls-group", 10) == ck

    from kafka import KafkaConsumer, KafkaProducer
    kp = KafkaProducer(bootstrap_servers=bootstrap, security_protocol="SSL",
                       ssl_cafile=pki.ca.pem, acks="all")
    for i in range(5):
        kp.send("sec1", f"kp-{i}".encode()).get(timeout=30)
    kp.close()
    kc = KafkaConsumer("sec1", bootstrap_servers=bootstrap, security_protocol="SSL",
                       ssl_cafile=pki.ca.pem, group_id="kp-tls", auto_offset_reset="earliest",
                       consumer_timeout_ms=10000)
    seen = [m.value for m in kc]
    kc.close()
    assert [v for v in seen if v.startswith(b"kp-")] == [f"kp-{i}".encode() for i in range(5)]

    failed_before = g.metric("kgate_tls_handshakes_total", vcluster="default", result="failed")
    assert not connects(bootstrap, {}, timeout=4)  # plaintext Kafka to a TLS port
    wait_for(lambda: g.metric("kgate_tls_handshakes_total", vcluster="default",
                              result="failed") > failed_before, 10, what="a failed handshake")
    assert g.metric("kgate_tls_handshakes_total", vcluster="default", result="ok") >= 4


def test_plain_and_tls_ports_side_by_side(pki, make_tls_gate):
    """listener.tls.port: TLS on a second port range; each bootstrap advertises brokers on its
    own range, so a client stays on the protocol it started with."""
    g = make_tls_gate(listener_tls_yaml(pki, second_port=True), tls_port=True)
    plain = AdminClient({"bootstrap.servers": f"127.0.0.1:{g.base}"}).list_topics(timeout=15)
    tls = AdminClient({"bootstrap.servers": f"127.0.0.1:{g.tls_base}",
                       **librdkafka_ssl(pki)}).list_topics(timeout=15)
    plain_ports = sorted(b.port for b in plain.brokers.values())
    tls_ports = sorted(b.port for b in tls.brokers.values())
    assert plain_ports == [g.base + 1 + n for n in sorted(plain.brokers)]
    assert tls_ports == [g.tls_base + 1 + n for n in sorted(tls.brokers)]
    assert produce(f"127.0.0.1:{g.tls_base}", librdkafka_ssl(pki), "sec1", [b"t"]) == [None]
    assert produce(f"127.0.0.1:{g.base}", {}, "sec1", [b"p"]) == [None]


MAPPING = ["RULE:^CN=([^,]*),OU=eng,.*$/$1/U", "DEFAULT"]


def test_mtls_required_principals_and_refused_certificates(pki, make_tls_gate):
    """client_auth: required with a CRL: alice's certificate maps to User:ALICE (the rule), bob's
    to his whole subject (DEFAULT); a chaos rule scoped to User:ALICE acts on alice only. No
    certificate, an expired one, a revoked one and one from another CA are refused at the
    handshake, counted, and logged with the reason."""
    g = make_tls_gate(listener_tls_yaml(pki, client_auth="required", crl=True, mapping=MAPPING))
    bootstrap = f"127.0.0.1:{g.base}"
    reply = g.admin("POST", "/v1/chaos/rules", {
        "type": "broken-brokers", "principal": "User:ALICE", "api": ["Produce"],
        "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    assert reply.status == 201, reply
    no_retry = {"message.send.max.retries": 0}
    alice = produce(bootstrap, {**librdkafka_ssl(pki, pki.alice), **no_retry}, "sec1", [b"a"])
    bob = produce(bootstrap, {**librdkafka_ssl(pki, pki.bob), **no_retry}, "sec1", [b"b"])
    assert alice[0] is not None and alice[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, alice
    assert bob == [None]
    reply = g.admin("POST", "/v1/chaos/rules", {
        "type": "broken-brokers", "principal": "User:CN=bob,OU=ops,O=acme", "api": ["Produce"],
        "errors": {"produce": "NOT_ENOUGH_REPLICAS"}, "for": "5m"})
    assert reply.status == 201, reply
    bob = produce(bootstrap, {**librdkafka_ssl(pki, pki.bob), **no_retry}, "sec1", [b"b"])
    assert bob[0] is not None and bob[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, bob

    failed = lambda: g.metric("kgate_tls_handshakes_total", vcluster="default",  # noqa: E731
                              result="failed")
    for client in (None, pki.expired, pki.carol, pki.stranger):
        before = failed()
        assert not connects(bootstrap, librdkafka_ssl(pki, client), timeout=4), client
        wait_for(lambda: failed() > before, 10, what=f"the refusal of {client} counted")
    log = g.log()
    for reason in ("certificate has expired", "certificate revoked",
                   "unable to get local issuer certificate"):
        assert reason in log, reason
    assert "peer did not return a certificate" in log


def _holding_producer(bootstrap, conf, topic, stop, results):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    i = 0
    while not stop.is_set():
        p.produce(topic, f"held-{i}".encode(), on_delivery=lambda e, m: results.append(e))
        p.poll(0.05)
        i += 1
        time.sleep(0.02)
    assert p.flush(30) == 0
    return p


def test_certificate_reload_keeps_connections(pki, make_tls_gate):
    """New certificate files + `kgate reload`: new connections get the new certificate, a
    producer connected before keeps producing on its connection; a reload with a broken key
    is refused with the reason, and the certificate in use stays."""
    g = make_tls_gate(listener_tls_yaml(pki))
    bootstrap = f"127.0.0.1:{g.base}"
    before = peer_certificate("127.0.0.1", g.base, pki.ca.pem)
    stop, results = threading.Event(), []
    t = threading.Thread(target=_holding_producer,
                         args=(bootstrap, librdkafka_ssl(pki), "sec3", stop, results))
    t.start()
    try:
        wait_for(lambda: len(results) > 20, 30, what="the producer acked before the reload")
        pki.renew_server()
        reply = g.admin("POST", "/v1/reload")
        assert reply.status == 200, reply
        after = peer_certificate("127.0.0.1", g.base, pki.ca.pem)
        assert after != before
        acked = len(results)
        wait_for(lambda: len(results) > acked + 20, 30, what="acks after the reload")
        with open(pki.server[1], "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        reply = g.admin("POST", "/v1/reload")
        assert reply.status == 400 and "listener TLS" in reply.text, reply
        assert peer_certificate("127.0.0.1", g.base, pki.ca.pem) == after
    finally:
        stop.set()
        t.join(60)
    assert results and all(e is None for e in results), [e for e in results if e][:3]


def _raw(port, payload):
    """Sends PAYLOAD to 127.0.0.1:PORT, then reads until the peer closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    except OSError:  # reset, not connected any more, timed out: kgate closed it
        pass
    finally:
        s.close()


def _tls_hello(port):
    """A TLS handshake with a plaintext port: it must fail (kgate reads no Kafka frame in it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            ctx.wrap_socket(s).close()
    except (ssl.SSLError, OSError):
        return
    raise AssertionError("a TLS handshake with a plaintext port succeeded")


def test_bad_input_on_tls_ports_harms_no_other_connection(pki, make_tls_gate):
    """Garbage, a plaintext Kafka request and a half handshake on the TLS port, and a TLS hello
    on the plaintext port: each of them is closed, while a TLS producer keeps getting every
    record acked and kgate keeps running."""
    g = make_tls_gate(listener_tls_yaml(pki, second_port=True), tls_port=True)
    stop, results = threading.Event(), []
    t = threading.Thread(target=_holding_producer, args=(
        f"127.0.0.1:{g.tls_base}", librdkafka_ssl(pki), "sec3", stop, results))
    t.start()
    try:
        wait_for(lambda: len(results) > 10, 30, what="acks before the bad input")
        api_versions = bytes.fromhex("0000000f001200000000000100056b6361740a")
        for _ in range(3):
            _raw(g.tls_base, os.urandom(2000))
            _raw(g.tls_base, api_versions)
            _raw(g.tls_base, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # cut short
            _tls_hello(g.base)
        acked = len(results)
        wait_for(lambda: len(results) > acked + 10, 30, what="acks after the bad input")
    finally:
        stop.set()
        t.join(60)
    assert all(e is None for e in results), [e for e in results if e][:3]
    assert g.proc.alive()
    assert g.metric("kgate_tls_handshakes_total", vcluster="default", result="failed") >= 6
    assert g.cluster_status("east")["up"]
