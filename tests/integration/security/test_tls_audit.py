"""Failed TLS handshakes with clients are audited, aggregated (issue 8, bad input): at most one
`tls.handshake_failures` entry per virtual cluster and minute, only when there were failures,
with the count by OpenSSL's reason and a few sample peer addresses. Each failure is still
counted (kgate_tls_handshakes_total) and logged at a limited rate."""

import datetime
import socket
import ssl

from kghelpers import wait_for
from tlsgate import Gate, Pki, listener_tls_yaml, peer_certificate


def handshake_fails(port, ca, client):
    """True when the server refuses a TLS client with CLIENT's certificate (with TLS 1.3 its
    verdict arrives after the client's side of the handshake: read it)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(*client)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.settimeout(5)
                return s.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def plaintext_to_tls_port(port):
    """Kafka bytes where a TLS ClientHello is expected; the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x0a" + b"\x00" * 10)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except (ConnectionError, socket.timeout):
            pass


def ts(entry):
    return datetime.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))


def test_failed_handshakes_are_audited_aggregated(tmp_path, cluster):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = Pki(pki_dir)
    work = tmp_path / "gate"
    work.mkdir()
    g = Gate(work, [f'east: {{ bootstrap: "{cluster.bootstrap}" }}'],
             ["primary: east", *listener_tls_yaml(pki, client_auth="required")])
    try:
        # A good handshake is no failure. (The start's port probe, a bare TCP connect, is one.)
        failed = lambda: g.metric("kgate_tls_handshakes_total",  # noqa: E731
                                  vcluster="default", result="failed")
        before = failed()
        assert peer_certificate("127.0.0.1", g.base, pki.ca.pem, client=pki.alice)

        plaintext_to_tls_port(g.base)
        plaintext_to_tls_port(g.base)
        assert handshake_fails(g.base, pki.ca.pem, client=pki.stranger)
        assert handshake_fails(g.base, pki.ca.pem, client=pki.expired)
        wait_for(lambda: failed() >= before + 4, 30, what="four more failures counted")
        total = failed()

        # Every counted failure ends up in an entry: one, or two when one was written between
        # the failures (the next then waits for its minute).
        def audited():
            return sum(e["details"]["failures"] for e in g.audit("tls.handshake_failures"))
        wait_for(lambda: audited() >= total, 150, interval=0.5, what="the failures audited")
        entries = g.audit("tls.handshake_failures")
        assert audited() == total and len(entries) <= 2, entries
        if len(entries) == 2:
            assert (ts(entries[1]) - ts(entries[0])).total_seconds() >= 59, entries
        reasons = {}
        peers = set()
        for e in entries:
            assert e["details"]["vcluster"] == "default"
            for reason, n in e["details"]["reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + n
            peers.update(e["details"]["sample_peers"])
        assert peers == {"127.0.0.1"}, entries
        # Short OpenSSL reasons, not whole error strings.
        assert all(not r.startswith("error:") and len(r) < 96 for r in reasons), reasons
        assert reasons.get("wrong version number") == 2, reasons
        assert reasons.get("certificate verify failed: certificate has expired") == 1, reasons
        assert reasons.get("certificate verify failed: unable to get local issuer certificate") \
            == 1, reasons
        assert "tls.handshake_failures" not in g.log()  # audited, not logged as an entry
    finally:
        g.stop()
