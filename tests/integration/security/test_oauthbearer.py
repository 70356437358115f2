"""SASL OAUTHBEARER at kgate (auth: gateway): clients present JWTs signed by an identity
provider's keys (RSA for RS256, EC P-256 for ES256, made here with the `cryptography` package),
kgate checks them against a JWKS file with the public halves, an issuer and an audience.

confluent-kafka (librdkafka 2.0.2, `oauth_cb`), kafka-python (`sasl_oauth_token_provider`, raw
v0 tokens after SaslHandshake v0), KafkaJS (`oauthBearerProvider`) and librdkafka 2.12 (its OIDC
client) produce and consume in a group through kgate, over plaintext and over kgate's TLS
listener (SASL_SSL); expired tokens, a wrong audience, a bad signature, an unsigned token and a
key of the wrong type are refused with SASL_AUTHENTICATION_FAILED, counted and audited, and no
token reaches the log or the audit trail."""

import base64
import http.server
import json
import os
import struct
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError
from kafka.oauth.abstract import AbstractTokenProvider

import kghelpers
from kghelpers import run, wait_closed_by_peer
from secgate import (connect, exchange, librdkafka_auth, parse_authenticate_response,
                     parse_handshake_response, sasl_authenticate, sasl_handshake)

NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs_sasl.cjs")
RDK_CLIENT = os.path.join(kghelpers.ROOT, "build", "deps", "rdk-client-2.12")
TOPIC = "sec3"
COUNT = 20
ISSUER = "https://idp.test.example"
AUDIENCE = "kgate-it"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


class Idp:
    """An identity provider: an RSA and an EC key pair, the JWKS of their public halves, and
    tokens signed with either."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self):
        rn = self.rsa.public_key().public_numbers()
        en = self.ec.public_key().public_numbers()
        return {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64url(_uint(rn.n)),
             "e": b64url(_uint(rn.e))},
            {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": b64url(en.x.to_bytes(32, "big")),
             "y": b64url(en.y.to_bytes(32, "big"))},
            {"kty": "oct", "kid": "hmac", "k": b64url(b"not used by kgate")},
        ]}

    def token(self, sub, alg="RS256", lifetime=600, aud=AUDIENCE, iss=ISSUER, kid=None,
              key=None, header=None, **claims):
        now = int(time.time())
        body = {"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, **claims}
        head = header or {"alg": alg, "typ": "JWT",
                          "kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")}
        signing_input = (b64url(json.dumps(head).encode()) + "." +
                         b64url(json.dumps(body).encode())).encode()
        if alg == "RS256":
            sig = (key or self.rsa).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(
                (key or self.ec).sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            sig = b""
        return signing_input.decode() + "." + b64url(sig), now + lifetime


@pytest.fixture(scope="module")
def idp():
    return Idp()


@pytest.fixture
def ogate(make_gate, cluster, idp, tmp_path):
    """kgate offering OAUTHBEARER (and SCRAM-SHA-512) with the IdP's JWKS, issuer and audience."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks()))
    g = make_gate({"east": cluster}, mechanisms=["OAUTHBEARER", "SCRAM-SHA-512"],
                  allow_plain=False,
                  listener_extra=["oauthbearer:", f"  jwks_file: {jwks}", f"  issuer: {ISSUER}",
                                  f"  audience: {AUDIENCE}", "  clock_skew_s: 5"])
    # The tests read metrics first thing: the admin API may open after the client port.
    assert kghelpers.wait_port_open("127.0.0.1", g.admin_port, 20)
    return g


def rdk_oauth(idp, sub, **token_args):
    """librdkafka settings whose oauth_cb hands out IdP tokens for SUB. librdkafka refuses to
    send a token it knows to be expired: it is told a later expiry than the token's own."""
    def cb(_config):
        token, exp = idp.token(sub, **token_args)
        return token, max(exp, time.time() + 60)
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": cb}


class TokenProvider(AbstractTokenProvider):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def token(self):
        return self.make()[0]


def kpy_oauth(idp, sub, **token_args):
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": TokenProvider(lambda: idp.token(sub, **token_args)),
            "request_timeout_ms": 15000, "api_version_auto_timeout_ms": 10000}


class TokenEndpoint:
    """An OAuth 2.0 token endpoint (client credentials grant) handing out the IdP's tokens, for
    librdkafka's built-in OIDC client. .url, .issued (tokens handed out), .stop()."""

    def __init__(self, idp, sub, lifetime):
        endpoint = self
        self.issued = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token, _ = idp.token(sub, alg="ES256", lifetime=lifetime)
                body = json.dumps({"access_token": token, "token_type": "Bearer",
                                   "expires_in": lifetime}).encode()
                endpoint.issued += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def xs(self):
        conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
                "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "kgate-it",
                "sasl.oauthbearer.client.secret": "not-checked",
                "sasl.oauthbearer.token.endpoint.url": self.url}
        return [x for k, v in conf.items() for x in ("-X", f"{k}={v}")]


def values(tag):
    return [f"{tag}-{i}" for i in range(COUNT)]


def oauth_frame(token, authzid=""):
    return f"n,{'a=' + authzid if authzid else ''},\x01auth=Bearer {token}\x01\x01".encode()


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_confluent_kafka(ogate, idp, alg):
    sub = "svc-" + uuid.uuid4().hex[:8]
    conf = rdk_oauth(idp, sub, alg=alg)
    before = ogate.successes("OAUTHBEARER")
    p = Producer({"bootstrap.servers": ogate.bootstrap, "acks": "all", **conf})
    errors = []
    want = values("ck-" + sub)
    for v in want:
        p.produce(TOPIC, v.encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors
    c = Consumer({"bootstrap.servers": ogate.bootstrap, "group.id": "g-" + sub,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, **conf})
    got = []
    try:
        c.subscribe([TOPIC])
        deadline = time.monotonic() + 60
        while not set(want) <= set(got) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            got.append(m.value().decode())
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert set(want) <= set(got)
    assert ogate.successes("OAUTHBEARER") > before
    # The principal is the token's sub: kgate logs nothing of the token itself.
    assert idp.token(sub, alg=alg)[0].split(".")[2] not in ogate.log()


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_kafka_python(ogate, idp, alg):
    sub = "kpy-" + uuid.uuid4().hex[:8]
    conf = kpy_oauth(idp, sub, alg=alg)
    want = values("kpy-" + sub)
    p = KafkaProducer(bootstrap_servers=ogate.bootstrap, acks="all", **conf)
    try:
        for f in [p.send(TOPIC, v.encode()) for v in want]:
            f.get(30)
    finally:
        p.close(10)
    c = KafkaConsumer(TOPIC, bootstrap_servers=ogate.bootstrap, group_id="g-" + sub,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=10000, heartbeat_interval_ms=500, **conf)
    got = []
    try:
        deadline = time.monotonic() + 60
        while not set(want) <= set(got) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [r.value.decode() for r in records]
        c.commit()
    finally:
        c.close()
    assert set(want) <= set(got)


def test_kafkajs(ogate, idp):
    sub = "js-" + uuid.uuid4().hex[:8]
    token, _ = idp.token(sub, alg="ES256")
    cp = run(["node", NODE_SCRIPT, json.dumps({
        "bootstrap": ogate.bootstrap, "topic": TOPIC, "count": COUNT, "group": "g-" + sub,
        "mechanism": "oauthbearer", "token": token, "prefix": "js-" + sub})], timeout=120)
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["acked"] == COUNT
    assert set(out["consumed"]) >= set(values("js-" + sub))


def test_librdkafka_212_oidc(ogate, idp):
    """librdkafka 2.12's own OIDC client (token endpoint, client credentials) produces and
    consumes through kgate."""
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    sub = "oidc-" + uuid.uuid4().hex[:8]
    endpoint = TokenEndpoint(idp, sub, lifetime=300)
    try:
        cp = run([RDK_CLIENT, "produce", "-b", ogate.bootstrap, "-t", TOPIC, "-n", str(COUNT),
                  "-p", "r-" + sub, *endpoint.xs()], timeout=90)
        assert json.loads(cp.stdout)["acked"] == COUNT
        cp = run([RDK_CLIENT, "consume", "-b", ogate.bootstrap, "-t", TOPIC, "-g", "g-" + sub,
                  "-n", str(COUNT), *endpoint.xs()], timeout=120)
        out = json.loads(cp.stdout)
        assert out["version"].startswith("2.12.")
        assert {v for _, _, v in out["records"]} >= {f"r-{sub}-{i}" for i in range(COUNT)}
        assert endpoint.issued >= 1
    finally:
        endpoint.stop()


def test_reauthentication_with_short_lived_tokens(ogate, idp):
    """KIP-368: the session lasts as long as the token. librdkafka 2.12 fetches a new token
    before the old one expires and re-authenticates on the same connections, so a consumer
    running through several token lifetimes is never closed for an expired session."""
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    sub = "short-" + uuid.uuid4().hex[:8]
    endpoint = TokenEndpoint(idp, sub, lifetime=6)
    try:
        before = ogate.successes("OAUTHBEARER")
        conns_before = ogate.metric("kgate_client_connections_total", vcluster="default")
        # Runs for 16 s (it never gets the million records it asks for).
        cp = run([RDK_CLIENT, "consume", "-b", ogate.bootstrap, "-t", TOPIC, "-g", "g-" + sub,
                  "-n", "1000000", "-s", "16", *endpoint.xs()], timeout=120, check=False)
        print(f"consumer exit {cp.returncode}, stderr: {cp.stderr.decode()[-3000:]}")
        assert json.loads(cp.stdout)["version"].startswith("2.12."), cp.stderr
    finally:
        endpoint.stop()
    opened = ogate.metric("kgate_client_connections_total", vcluster="default") - conns_before
    authenticated = ogate.successes("OAUTHBEARER") - before
    print(f"tokens {endpoint.issued}, connections {opened}, authentications {authenticated}")
    assert endpoint.issued >= 2, endpoint.issued
    # More authentications than connections: some were re-authentications on a connection.
    assert authenticated > opened, (authenticated, opened)
    assert "expired without re-authentication" not in ogate.log()
    assert b"uthentication" not in cp.stderr, cp.stderr[-2000:]


def test_sasl_ssl(make_gate, cluster, idp, tmp_path):
    """OAUTHBEARER over kgate's TLS listener (SASL_SSL), as it should be deployed: confluent-kafka
    and kafka-python produce and consume; a token refused over TLS still reads as one."""
    from tlsgate import Pki
    pki = Pki(tmp_path)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks()))
    g = make_gate({"east": cluster}, mechanisms=["OAUTHBEARER"], allow_plain=False,
                  listener_extra=["oauthbearer:", f"  jwks_file: {jwks}", f"  issuer: {ISSUER}",
                                  f"  audience: {AUDIENCE}", "tls:",
                                  f"  cert_file: {pki.server[0]}",
                                  f"  key_file: {pki.server[1]}"])
    assert kghelpers.wait_port_open("127.0.0.1", g.admin_port, 20)
    sub = "tls-" + uuid.uuid4().hex[:8]
    conf = {**rdk_oauth(idp, sub), "security.protocol": "SASL_SSL",
            "ssl.ca.location": pki.ca.pem}
    p = Producer({"bootstrap.servers": g.bootstrap, "acks": "all", **conf})
    errors = []
    want = values("ssl-" + sub)
    for v in want:
        p.produce(TOPIC, v.encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors
    kconf = {**kpy_oauth(idp, sub), "security_protocol": "SASL_SSL", "ssl_cafile": pki.ca.pem}
    c = KafkaConsumer(TOPIC, bootstrap_servers=g.bootstrap, group_id="g-" + sub,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=10000, heartbeat_interval_ms=500, **kconf)
    got = []
    try:
        deadline = time.monotonic() + 60
        while not set(want) <= set(got) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [r.value.decode() for r in records]
    finally:
        c.close()
    assert set(want) <= set(got)
    errs = librdkafka_auth(g.bootstrap, {**rdk_oauth(idp, "mallory", lifetime=-60),
                                         "security.protocol": "SASL_SSL",
                                         "ssl.ca.location": pki.ca.pem})
    assert errs and "expired" in errs[0].str(), errs


def test_refused_tokens(ogate, idp):
    """Expired, wrong audience, wrong issuer, a signature by another key, an unsigned token:
    each client reports an authentication failure; kgate counts, logs and audits the reason."""
    other = Idp()
    before = ogate.failures("OAUTHBEARER")
    cases = [
        ({"lifetime": -60}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"key": other.rsa}, "signature does not verify"),
    ]
    for args, reason in cases:
        errs = librdkafka_auth(ogate.bootstrap, rdk_oauth(idp, "mallory", **args))
        assert errs and "Authentication failed" in errs[0].str() and reason in errs[0].str(), \
            (reason, errs)
    # librdkafka's own unsecured JWTs (alg none, for development) are refused
    errs = librdkafka_auth(ogate.bootstrap, {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": "principal=alice"})
    assert errs and 'alg "none"' in errs[0].str(), errs
    # kafka-python (raw tokens after SaslHandshake v0): the error challenge is its failure
    with pytest.raises(KafkaPythonError) as raised:
        KafkaProducer(bootstrap_servers=ogate.bootstrap,
                      **kpy_oauth(idp, "mallory", alg="ES256", lifetime=-60))
    assert "uthentication" in repr(raised.value) or "NoBrokersAvailable" in repr(raised.value)
    # KafkaJS 2.2 ignores the server's answer to its token, so it misses the error challenge
    # and sends its next request, which kgate refuses as a broker does (before authentication,
    # the connection closes): it reports a closed connection, exactly as against a broker.
    token, _ = idp.token("mallory", aud="someone-else")
    cp = run(["node", NODE_SCRIPT, json.dumps({
        "bootstrap": ogate.bootstrap, "mechanism": "oauthbearer", "token": token,
        "expect_auth_error": True})], timeout=60)
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["auth_error"] and ("SASL" in out["auth_error"] or
                                  "Closed connection" in out["auth_error"]), out
    assert ogate.failures("OAUTHBEARER") >= before + len(cases) + 3
    want = {"expired", "audience", "issuer", "signature does not verify"}

    def audited():
        reasons = [a["details"]["reason"] for a in ogate.audit("auth.failure")
                   if a["details"]["mechanism"] == "OAUTHBEARER"]
        return all(any(w in r for r in reasons) for w in want)

    kghelpers.wait_for(audited, timeout=20, what="the refusals' audit entries")
    dump = json.dumps(ogate.audit("auth.failure")) + ogate.log()
    assert token.split(".")[2] not in dump and token.split(".")[1] not in dump


def test_wire_exchange(ogate, idp):
    """On raw frames: the error challenge and Kafka's 0x01 answer, algorithms refused, the
    session lifetime of the token (KIP-368), an authzid that is not the principal."""
    def attempt(token, authzid=""):
        s = connect(ogate.bootstrap)
        _, err, mechs = parse_handshake_response(exchange(s, sasl_handshake(1, 1, "OAUTHBEARER")))
        assert err == 0 and mechs == ["SCRAM-SHA-512", "OAUTHBEARER"]
        return s, parse_authenticate_response(
            exchange(s, sasl_authenticate(1, 2, oauth_frame(token, authzid))), 1)

    # valid: lifetime is what is left of the token (no sasl_session_ms configured)
    token, _ = idp.token("alice", alg="ES256", lifetime=120)
    s, (err, msg, data, lifetime) = attempt(token, "alice")
    assert err == 0 and data == b"" and 110000 <= lifetime <= 120000, (err, msg, lifetime)
    s.sendall(kghelpers.metadata_v1_all_topics(3))
    assert struct.unpack(">i", kghelpers.recv_frame(s)[:4])[0] == 3
    s.close()
    # refused tokens: the JSON challenge first, then SASL_AUTHENTICATION_FAILED after 0x01
    unsigned = idp.token("alice", alg="none", header={"alg": "none"})[0]
    hs256 = idp.token("alice", header={"alg": "HS256", "kid": "hmac"})[0]
    confused = idp.token("alice", alg="ES256", kid="rsa-1")[0]
    for bad, reason in ((unsigned, "alg \"none\""), (hs256, "HMAC"), (confused, "does not fit"),
                        ("not-a-jwt", "compact JWS")):
        s, (err, msg, data, _) = attempt(bad)
        assert err == 0 and json.loads(data) == {"status": "invalid_token"}, (err, msg, data)
        err, msg, _, _ = parse_authenticate_response(
            exchange(s, sasl_authenticate(1, 3, b"\x01")), 1)
        assert err == 58 and reason in msg, (reason, err, msg)
        assert wait_closed_by_peer(s, 10)
        s.close()
    # an authzid other than the token's principal: refused at once
    s, (err, msg, _, _) = attempt(token, "bob")
    assert err == 58 and "authorization id" in msg, msg
    s.close()


def test_bad_jwks_is_a_config_error(tmp_path, cluster):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": [{"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"}]}')
    cfg = tmp_path / "kgate.yaml"
    cfg.write_text("\n".join([
        "clusters:", f'  east: {{ bootstrap: "{cluster.bootstrap}" }}', "vclusters:",
        "  default:", "    port: 19990", "    primary: east", "    auth: gateway",
        "    listener:", "      sasl: [OAUTHBEARER]", "      oauthbearer:",
        f"        jwks_file: {jwks}", ""]))
    cp = run([kghelpers.KGATE_BIN, "check", "-c", str(cfg)], check=False, timeout=30)
    out = (cp.stdout + cp.stderr).decode()
    assert cp.returncode != 0 and "jwks_file" in out and "bits" in out, out
