"""What goes wrong: a wrong password, an unknown user and an unsupported mechanism make the
client report an authentication error, kgate count it and audit it (without the secret), and an
authenticated client next to them is not disturbed; requests before authentication, SASL
messages out of order, a replayed exchange, and SaslHandshake v0 with raw tokens, on raw
sockets."""

import json
import os
import struct
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError

from kghelpers import (api_versions_v0, encode_request, metadata_v1_all_topics, read_uvarint,
                       recv_frame, run, wait_closed_by_peer, wait_for)
from secgate import (ScramClient, connect, exchange, librdkafka_auth, librdkafka_sasl,
                     parse_authenticate_response,
                     parse_handshake_response, sasl_authenticate, sasl_handshake,
                     scram_authenticate)

WRONG = "Wr0ng-Pa55-7731"
NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs_sasl.cjs")


class SteadyProducer(threading.Thread):
    """An authenticated producer that keeps producing while the failures happen next to it."""

    def __init__(self, gate):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.acked = 0
        self.errors = []
        self.p = Producer({"bootstrap.servers": gate.bootstrap, "acks": "all",
                           **librdkafka_sasl("SCRAM-SHA-512", "bob", "bob-secret")})

    def on_delivery(self, err, msg):
        if err:
            self.errors.append(err)
        else:
            self.acked += 1

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.p.produce("sec1", b"steady-%d" % i, on_delivery=self.on_delivery)
            self.p.poll(0.02)
            i += 1
        self.p.flush(30)


def test_wrong_password_unknown_user_bad_mechanism(gate):
    steady = SteadyProducer(gate)
    steady.start()
    try:
        # wrong password: librdkafka 2.0.2 (SCRAM-SHA-256) and kafka-python (PLAIN)
        before = gate.failures("SCRAM-SHA-256")
        errs = librdkafka_auth(gate.bootstrap,
                                    librdkafka_sasl("SCRAM-SHA-256", "alice", WRONG))
        assert errs and "Authentication failed" in errs[0].str(), errs
        assert gate.failures("SCRAM-SHA-256") > before
        before = gate.failures("PLAIN")
        with pytest.raises(KafkaPythonError) as raised:
            KafkaProducer(bootstrap_servers=gate.bootstrap, security_protocol="SASL_PLAINTEXT",
                          sasl_mechanism="PLAIN", sasl_plain_username="alice",
                          sasl_plain_password=WRONG, api_version_auto_timeout_ms=10000)
        assert "uthentication" in repr(raised.value) or "NoBrokersAvailable" in repr(raised.value)
        assert gate.failures("PLAIN") > before
        # unknown user: the same answer as a wrong password (nothing tells names apart)
        errs = librdkafka_auth(gate.bootstrap,
                                    librdkafka_sasl("SCRAM-SHA-512", "mallory", "alice-secret"))
        assert errs and "invalid credentials" in errs[0].str(), errs
        # KafkaJS reports the same failure
        cp = run(["node", NODE_SCRIPT, json.dumps({
            "bootstrap": gate.bootstrap, "mechanism": "scram-sha-256", "username": "alice",
            "password": WRONG, "expect_auth_error": True})], timeout=60)
        out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
        assert out["auth_error"] and "SASL" in out["auth_error"], out
        # a mechanism kgate does not offer: UNSUPPORTED_SASL_MECHANISM and the enabled list
        with connect(gate.bootstrap) as s:
            _, err, mechs = parse_handshake_response(exchange(s, sasl_handshake(1, 1, "GSSAPI")))
            assert err == 33 and mechs == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
            assert wait_closed_by_peer(s, 10)
    finally:
        steady.stop.set()
        steady.join(60)
        del steady.p  # no reconnect attempts to this kgate once it is gone
    assert steady.acked > 0 and not steady.errors, steady.errors
    # Audited without secrets, logged without secrets.
    def audited():
        reasons = {(a["details"]["user"], a["details"]["reason"])
                   for a in gate.audit("auth.failure")}
        return ("alice", "invalid credentials") in reasons and \
            ("mallory", "invalid credentials") in reasons and \
            ("", "mechanism 'GSSAPI' is not enabled") in reasons

    wait_for(audited, timeout=20, what="the failures' audit entries")
    audits = gate.audit("auth.failure")
    dump = json.dumps(audits) + gate.log()
    assert WRONG not in dump and "alice-secret" not in dump and "bob-secret" not in dump


def test_mechanism_not_enabled_is_reported(make_gate, cluster):
    g = make_gate({"east": cluster}, mechanisms=["SCRAM-SHA-512"], allow_plain=False)
    g.cli("add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", input="pw\n")
    errors = []
    a = AdminClient({"bootstrap.servers": g.bootstrap, "error_cb": errors.append,
                     **librdkafka_sasl("SCRAM-SHA-256", "alice", "pw")})
    deadline = time.monotonic() + 30
    while not any("Unsupported SASL mechanism" in e.str() for e in errors) and \
            time.monotonic() < deadline:
        a.poll(0.2)
    assert any("Unsupported SASL mechanism" in e.str() for e in errors), errors
    assert g.failures("none") >= 1
    audits = g.wait_audit("auth.failure", 1, "the failure's audit entry")
    assert "SCRAM-SHA-256" in audits[-1]["details"]["reason"]


def test_request_before_authentication_closes_only_that_connection(gate):
    with connect(gate.bootstrap) as good:
        scram_authenticate(good, "SCRAM-SHA-256", "alice", "alice-secret")
        with connect(gate.bootstrap) as bad:
            # ApiVersions is served before authentication; Metadata is not.
            assert struct.unpack(">ih", exchange(bad, api_versions_v0(1))[:6])[1] == 0
            bad.sendall(metadata_v1_all_topics(2))
            assert wait_closed_by_peer(bad, 10)
        good.sendall(metadata_v1_all_topics(3))
        assert struct.unpack(">i", recv_frame(good)[:4])[0] == 3
        # A huge frame before authentication is refused at its header, never buffered.
        for api in (0, 36):  # Produce, SaslAuthenticate
            with connect(gate.bootstrap) as big:
                header = encode_request(api, 1, 9)[4:]
                big.sendall(struct.pack(">i", 50 << 20) + header)
                assert wait_closed_by_peer(big, 10)
    assert gate.metric("kgate_sasl_unauthenticated_requests_total", vcluster="default") >= 2
    assert "before SASL authentication" in gate.log()


def test_out_of_order_and_replayed_messages(gate):
    # SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then the connection ends.
    with connect(gate.bootstrap) as s:
        err, msg, _, _ = parse_authenticate_response(
            exchange(s, sasl_authenticate(1, 1, b"n,,n=alice,r=abc")), 1)
        assert err == 34 and msg
        assert wait_closed_by_peer(s, 10)
    # A second handshake in the middle of an exchange: ILLEGAL_SASL_STATE.
    with connect(gate.bootstrap) as s:
        assert parse_handshake_response(exchange(s, sasl_handshake(1, 1, "PLAIN")))[1] == 0
        assert parse_handshake_response(exchange(s, sasl_handshake(1, 2, "PLAIN")))[1] == 34
        assert wait_closed_by_peer(s, 10)
    # A client-final-message replayed on a new exchange (a new server nonce) fails.
    with connect(gate.bootstrap) as s:
        exchange(s, sasl_handshake(1, 1, "SCRAM-SHA-256"))
        c = ScramClient("SCRAM-SHA-256", "alice", "alice-secret")
        _, _, server_first, _ = parse_authenticate_response(
            exchange(s, sasl_authenticate(1, 2, c.first())), 1)
        final = c.final(server_first)
        err, _, _, _ = parse_authenticate_response(exchange(s, sasl_authenticate(1, 3, final)), 1)
        assert err == 0
    with connect(gate.bootstrap) as s:
        exchange(s, sasl_handshake(1, 1, "SCRAM-SHA-256"))
        c2 = ScramClient("SCRAM-SHA-256", "alice", "alice-secret")
        c2.nonce, c2.bare = c.nonce, c.bare  # same client nonce, as a replay would have
        exchange(s, sasl_authenticate(1, 2, c2.first()))
        err, msg, _, _ = parse_authenticate_response(exchange(s, sasl_authenticate(1, 3, final)), 1)
        assert err == 58 and "nonce" in msg, msg
        assert wait_closed_by_peer(s, 10)
    # Garbage in the first SCRAM message: SASL_AUTHENTICATION_FAILED with the reason.
    with connect(gate.bootstrap) as s:
        exchange(s, sasl_handshake(1, 1, "SCRAM-SHA-512"))
        err, msg, _, _ = parse_authenticate_response(
            exchange(s, sasl_authenticate(1, 2, b"p=tls-unique,,n=alice,r=x")), 1)
        assert err == 58 and "channel binding" in msg, msg


def test_handshake_v0_then_raw_tokens(gate):
    """Old clients: SaslHandshake v0, then bare length-prefixed tokens without Kafka headers."""
    with connect(gate.bootstrap) as s:
        assert parse_handshake_response(exchange(s, sasl_handshake(0, 1, "SCRAM-SHA-512")))[1] == 0
        c = ScramClient("SCRAM-SHA-512", "bob", "bob-secret")
        server_first = exchange(s, struct.pack(">i", len(c.first())) + c.first())
        final = c.final(server_first)
        assert c.verify(exchange(s, struct.pack(">i", len(final)) + final))
        s.sendall(metadata_v1_all_topics(7))
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == 7
    with connect(gate.bootstrap) as s:
        assert parse_handshake_response(exchange(s, sasl_handshake(0, 1, "PLAIN")))[1] == 0
        token = b"\0alice\0alice-secret"
        assert exchange(s, struct.pack(">i", len(token)) + token) == b""
        s.sendall(metadata_v1_all_topics(8))
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == 8
    with connect(gate.bootstrap) as s:  # v0 has no error channel: a failure closes
        exchange(s, sasl_handshake(0, 1, "PLAIN"))
        token = b"\0alice\0nope"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert wait_closed_by_peer(s, 10)


def test_authenticate_v2_flexible(gate):
    """SaslAuthenticate v2 (flexible: compact strings and bytes, tagged fields), as encoded for
    the request's version by kgate's generated codecs."""
    with connect(gate.bootstrap) as s:
        assert parse_handshake_response(exchange(s, sasl_handshake(1, 1, "PLAIN")))[1] == 0
        frame = exchange(s, sasl_authenticate(2, 2, b"\0alice\0alice-secret"))
        assert struct.unpack(">i", frame[:4])[0] == 2 and frame[4] == 0  # header v1: no tags
        err = struct.unpack(">h", frame[5:7])[0]
        msg_len, at = read_uvarint(frame, 7)
        assert err == 0 and msg_len == 0  # null error message
        bytes_len, at = read_uvarint(frame, at)
        assert bytes_len == 1  # empty auth bytes
        assert struct.unpack(">q", frame[at:at + 8])[0] == 0  # no session lifetime configured
        s.sendall(metadata_v1_all_topics(3))
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == 3
    with connect(gate.bootstrap) as s:
        exchange(s, sasl_handshake(1, 1, "PLAIN"))
        frame = exchange(s, sasl_authenticate(2, 2, b"\0alice\0nope"))
        err = struct.unpack(">h", frame[5:7])[0]
        msg_len, at = read_uvarint(frame, 7)
        assert err == 58 and b"invalid credentials" in frame[at:at + msg_len - 1]
        assert wait_closed_by_peer(s, 10)
