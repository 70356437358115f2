"""kgate with `auth: gateway` for the security tests, and the SASL pieces the tests need: a
SCRAM/PLAIN client written from RFC 5802/7677 for raw-socket tests, and client settings."""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import struct
import time

import kghelpers
from kghelpers import (admin_http, encode_request, kgate_ports, recv_frame, run, start_kgate,
                       stop_kgate, wait_for)

SECURITY_TOPICS = ["sec3:3", "sec1:1", "fo3:3"]
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class SaslGate:
    """kgate in front of CLUSTERS ({name: DevCluster}); the virtual cluster "default" runs on the
    first one (the second, when given, is its secondary) with auth: gateway.

    .bootstrap, .admin_port, .cli(...), .metric(...), .audit(type), .log()"""

    def __init__(self, clusters, work, mechanisms=MECHANISMS, session_ms=0, allow_plain=True,
                 listener_extra=(), ca=None):
        self.ca = ca  # the CA of the listener's certificate when listener_extra gives it TLS
        names = list(clusters)
        ports, self.admin_port = kgate_ports(["default"])
        self.base = ports["default"]
        self.bootstrap = f"127.0.0.1:{self.base}"
        self.config_path = os.path.join(str(work), "kgate.yaml")
        self.stderr_path = os.path.join(str(work), "kgate.stderr")
        lines = ["listen: 127.0.0.1", "advertised_host: 127.0.0.1", "clusters:"]
        for name, dc in clusters.items():
            lines.append(f'  {name}: {{ bootstrap: "{dc.bootstrap}" }}')
        lines += ["vclusters:", "  default:", f"    port: {self.base}", f"    primary: {names[0]}"]
        if len(names) > 1:
            lines.append(f"    secondary: {names[1]}")
        lines += ["    auth: gateway", "    listener:", f"      sasl: [{', '.join(mechanisms)}]"]
        if allow_plain:
            lines.append("      allow_plain_without_tls: true")
        if session_ms:
            lines.append(f"      sasl_session_ms: {session_ms}")
        lines += [f"      {line}" for line in listener_extra]  # more of listener:, as YAML lines
        lines += [f"admin: {{ listen: 127.0.0.1:{self.admin_port} }}",
                  f"state: {os.path.join(str(work), 'kgate-state.db')}", "health:",
                  "  probe_interval_ms: 200"]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = start_kgate(kghelpers.KGATE_BIN, self.config_path, self.stderr_path,
                                [self.base])

    def stop(self):
        stop_kgate(self.proc)

    def log(self):
        return self.proc.stderr_text()

    def cli(self, *args, input=None, check=True):
        """`kgate users ARGS --admin ...`; returns the CompletedProcess."""
        cp = run([kghelpers.KGATE_BIN, "users", *args, "--admin", f"127.0.0.1:{self.admin_port}"],
                 timeout=60, input=input.encode() if input else None, check=False)
        if check:
            assert cp.returncode == 0, (args, cp.returncode, cp.stdout, cp.stderr)
        return cp

    def admin(self, method, path, body=None):
        return admin_http(self.admin_port, method, path, body)

    def metric(self, name, **labels):
        """The value of one sample of /metrics (0 when absent)."""
        text = self.admin("GET", "/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m and m.group(1) == name:
                got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
                if got == want:
                    return float(m.group(3))
        return 0.0

    def failures(self, mechanism):
        return self.metric("kgate_sasl_authentications_total", vcluster="default",
                           mechanism=mechanism, result="failed")

    def successes(self, mechanism):
        return self.metric("kgate_sasl_authentications_total", vcluster="default",
                           mechanism=mechanism, result="ok")

    def audit(self, type_):
        reply = self.admin("GET", "/v1/audit?limit=1000")
        assert reply.status == 200, reply
        entries = reply.json["entries"] if isinstance(reply.json, dict) else reply.json
        return [e for e in entries if e["type"] == type_]

    def wait_audit(self, type_, count, what):
        """Failure audits are written by kgate's once-a-second housekeeping: wait (bounded)."""
        wait_for(lambda: len(self.audit(type_)) >= count, timeout=20, what=what)
        return self.audit(type_)


# ---------------------------------------------------------------------------------------------
# Client settings


def librdkafka_sasl(mechanism, user, password, ca=None):
    """SASL_PLAINTEXT, or SASL_SSL trusting CA (kgate's TLS listener) when given."""
    conf = {"security.protocol": "SASL_SSL" if ca else "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
    if ca:
        conf["ssl.ca.location"] = ca
    return conf


def kcat_sasl_args(mechanism, user, password, ca=None):
    out = []
    for k, v in librdkafka_sasl(mechanism, user, password, ca).items():
        out += ["-X", f"{k}={v}"]
    return out


def librdkafka_auth(bootstrap, conf, timeout=15):
    """Connects a librdkafka client (Debian's 2.0.2): [] when it authenticated (it lists the
    topics), else the authentication errors it reported; bounded."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient
    errors = []
    a = AdminClient({"bootstrap.servers": bootstrap, "error_cb": errors.append, **conf})
    auth = lambda: [e for e in errors if e.code() == KafkaError._AUTHENTICATION]  # noqa: E731
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            a.list_topics(timeout=1)
            return []
        except Exception:
            a.poll(0.2)  # error_cb runs from poll()
        if auth():
            return auth()
    raise AssertionError(f"neither authenticated nor an authentication error: {errors}")


# ---------------------------------------------------------------------------------------------
# Raw frames: a SASL client from the RFCs, for what no client library lets a test do


def sasl_handshake(version, corr, mechanism):
    m = mechanism.encode()
    return encode_request(17, version, corr, struct.pack(">h", len(m)) + m)


def sasl_authenticate(version, corr, token):
    if version >= 2:  # flexible: compact bytes (length + 1), then empty tagged fields
        return encode_request(36, version, corr, _uvarint(len(token) + 1) + token + b"\x00",
                              flexible=True)
    return encode_request(36, version, corr, struct.pack(">i", len(token)) + token)


def _uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def parse_handshake_response(frame):
    """-> (correlation id, error code, [mechanisms])"""
    corr, err, n = struct.unpack(">ihi", frame[:10])
    at, mechs = 10, []
    for _ in range(n):
        (ln,) = struct.unpack(">h", frame[at:at + 2])
        mechs.append(frame[at + 2:at + 2 + ln].decode())
        at += 2 + ln
    return corr, err, mechs


def parse_authenticate_response(frame, version):
    """-> (error code, error message or None, auth bytes, session lifetime ms) for v0/v1."""
    assert version < 2, "the tests read non-flexible versions only"
    at = 4  # correlation id
    (err,) = struct.unpack(">h", frame[at:at + 2])
    at += 2
    (ln,) = struct.unpack(">h", frame[at:at + 2])
    at += 2
    msg = None
    if ln >= 0:
        msg = frame[at:at + ln].decode()
        at += ln
    (bl,) = struct.unpack(">i", frame[at:at + 4])
    at += 4
    data = frame[at:at + bl]
    at += bl
    lifetime = struct.unpack(">q", frame[at:at + 8])[0] if version >= 1 else 0
    return err, msg, data, lifetime


class ScramClient:
    """RFC 5802 client side: first() -> client-first; final(server_first) -> client-final;
    verify(server_final) checks the server's signature."""

    def __init__(self, mechanism, user, password):
        self.hash = hashlib.sha256 if mechanism == "SCRAM-SHA-256" else hashlib.sha512
        self.user, self.password = user, password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.bare = f"n={user},r={self.nonce}"

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first, nonce_override=None):
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        salt, iters, nonce = base64.b64decode(attrs["s"]), int(attrs["i"]), attrs["r"]
        assert nonce.startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac(self.hash().name, self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = self.hash(client_key).digest()
        without = f"c=biws,r={nonce_override or nonce}"
        auth = f"{self.bare},{server_first.decode()},{without}".encode()
        sig = hmac.new(stored, auth, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        self.server_sig = base64.b64encode(hmac.new(server_key, auth, self.hash).digest())
        return f"{without},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        return server_final == b"v=" + self.server_sig


def connect(bootstrap):
    host, port = bootstrap.split(":")
    s = socket.create_connection((host, int(port)), timeout=15)
    s.settimeout(15)
    return s


def exchange(sock, frame):
    sock.sendall(frame)
    return recv_frame(sock)


def scram_authenticate(sock, mechanism, user, password, version=1, corr=100):
    """SaslHandshake v1 + SaslAuthenticate (VERSION) on SOCK; returns the last response parsed."""
    _, err, _ = parse_handshake_response(exchange(sock, sasl_handshake(1, corr, mechanism)))
    assert err == 0
    c = ScramClient(mechanism, user, password)
    err, msg, server_first, _ = parse_authenticate_response(
        exchange(sock, sasl_authenticate(version, corr + 1, c.first())), version)
    assert err == 0, msg
    resp = parse_authenticate_response(
        exchange(sock, sasl_authenticate(version, corr + 2, c.final(server_first))), version)
    if resp[0] == 0:
        assert c.verify(resp[2]), "the server signature does not verify"
    return resp


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
