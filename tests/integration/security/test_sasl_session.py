"""KIP-368: kgate announces the configured session lifetime in SaslAuthenticate v1+; a client
re-authenticates on the same connection, and a connection that outlives its session without
doing so is closed at its next request. A client that cannot re-authenticate (librdkafka 2.0.2)
reconnects and goes on without losing a message."""

import json
import os
import struct
import time

from confluent_kafka import Producer

from kghelpers import (ROOT, metadata_v1_all_topics, recv_frame, run, wait_closed_by_peer,
                       wait_for)
from secgate import connect, librdkafka_sasl, scram_authenticate

SESSION_MS = 1500


def test_lifetime_announced_reauthentication_and_expiry(make_gate, cluster):
    gate = make_gate({"east": cluster}, session_ms=SESSION_MS)
    gate.cli("add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", input="pw\n")
    gate.cli("add", "bob", "--mechanism", "SCRAM-SHA-256", "--password-stdin", input="pw2\n")
    with connect(gate.bootstrap) as s:
        err, _, _, lifetime = scram_authenticate(s, "SCRAM-SHA-256", "alice", "pw")
        assert err == 0 and lifetime == SESSION_MS
        # Re-authentication on the same connection, with traffic between.
        s.sendall(metadata_v1_all_topics(10))
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == 10
        err, _, _, lifetime = scram_authenticate(s, "SCRAM-SHA-256", "alice", "pw", corr=200)
        assert err == 0 and lifetime == SESSION_MS
        reauthenticated = time.monotonic()
        s.sendall(metadata_v1_all_topics(11))
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == 11
        # Re-authenticating as someone else is refused, and ends the connection.
        err, msg, _, _ = scram_authenticate(s, "SCRAM-SHA-256", "bob", "pw2", corr=300)
        assert err == 58 and "another principal" in msg
        assert wait_closed_by_peer(s, 10)
    with connect(gate.bootstrap) as s:
        assert scram_authenticate(s, "SCRAM-SHA-256", "alice", "pw")[0] == 0
        reauthenticated = time.monotonic()
        # The session ends SESSION_MS after authentication: sleep past it (the feature is a
        # lifetime; nothing here measures kgate's speed), then the next request closes.
        time.sleep(SESSION_MS / 1000 + 0.5 - (time.monotonic() - reauthenticated))
        s.sendall(metadata_v1_all_topics(12))
        assert wait_closed_by_peer(s, 10)
    assert "expired without re-authentication" in gate.log()


def test_client_without_reauthentication_reconnects(make_gate, cluster):
    gate = make_gate({"east": cluster}, session_ms=SESSION_MS)
    gate.cli("add", "alice", "--mechanism", "SCRAM-SHA-512", "--password-stdin", input="pw\n")
    before = gate.successes("SCRAM-SHA-512")
    errors, acked = [], []
    p = Producer({"bootstrap.servers": gate.bootstrap, "acks": "all", "linger.ms": 5,
                  **librdkafka_sasl("SCRAM-SHA-512", "alice", "pw")})
    def on_delivery(err, msg):
        (errors if err else acked).append(err or msg.value())

    # Produce until kgate has authenticated this client at least three more times (sessions
    # ended and the client came back), bounded.
    deadline = time.monotonic() + 60
    i = 0
    while gate.successes("SCRAM-SHA-512") < before + 3 and time.monotonic() < deadline:
        p.produce("sec1", b"s-%d" % i, on_delivery=on_delivery)
        p.poll(0.05)
        i += 1
    assert p.flush(30) == 0
    assert gate.successes("SCRAM-SHA-512") >= before + 3, "sessions never ended"
    assert not errors, errors[:5]
    assert len(acked) == i
    wait_for(lambda: "expired without re-authentication" in gate.log(), timeout=10,
             what="the expiry log line")


def test_librdkafka_212_reauthenticates_on_its_connections(make_gate, cluster):
    """librdkafka 2.2+ implements KIP-368: its connections re-authenticate before the session
    ends, so kgate never has to close them for it."""
    rdk_client = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")
    gate = make_gate({"east": cluster}, session_ms=SESSION_MS)
    gate.cli("add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", input="pw\n")
    xs = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
          "-X", "sasl.username=alice", "-X", "sasl.password=pw"]
    run([rdk_client, "produce", "-b", gate.bootstrap, "-t", "sec1", "-n", "10", "-p", "ra",
         *xs], timeout=60)
    # A group member that waits for more than there is: it stays connected for its -s seconds,
    # several session lifetimes, fetching all along.
    cp = run([rdk_client, "consume", "-b", gate.bootstrap, "-t", "sec1", "-g", "reauth", "-n",
              "1000000", "-s", "6", *xs], timeout=90, check=False)
    out = json.loads(cp.stdout)
    assert {v for _, _, v in out["records"]} >= {f"ra-{i}" for i in range(10)}
    assert "expired without re-authentication" not in gate.log()
    assert "re-authentication as another principal" not in gate.log()
    # More authentications than connections: some ran again on a connection.
    connections = gate.metric("kgate_client_connections_total", vcluster="default")
    assert gate.successes("SCRAM-SHA-256") > connections > 0
