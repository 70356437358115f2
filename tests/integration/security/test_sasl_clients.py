"""Real clients over SASL_PLAINTEXT and SASL_SSL to kgate (auth: gateway, and a TLS listener
for SASL_SSL), each with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN: produce, then consume in a
consumer group, through kgate. Each run authenticates as its own user, and kgate's success
counter for that mechanism moves."""

import json
import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer

from kghelpers import ROOT, run
from secgate import MECHANISMS, kcat_sasl_args, librdkafka_sasl
from tlsgate import Pki, listener_tls_yaml

RDK_CLIENT = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")
NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs_sasl.cjs")
TOPIC = "sec3"
COUNT = 30


@pytest.fixture(params=["SASL_PLAINTEXT", "SASL_SSL"])
def gate(request, make_gate, cluster, tmp_path):
    """kgate with the three mechanisms, over plaintext or behind its own TLS listener."""
    if request.param == "SASL_PLAINTEXT":
        return make_gate({"east": cluster})
    d = tmp_path / "pki"
    d.mkdir()
    pki = Pki(d)
    return make_gate({"east": cluster}, listener_extra=[line[2:] for line in listener_tls_yaml(pki)[1:]],
                     ca=pki.ca.pem)


def values(tag):
    return [f"{tag}-{i}" for i in range(COUNT)]


def new_user(gate, mechanism):
    """A user of its own for one run (PLAIN checks the password against the SCRAM keys)."""
    name = "u" + uuid.uuid4().hex[:10]
    scram = "SCRAM-SHA-512" if mechanism == "PLAIN" else mechanism
    gate.cli("add", name, "--mechanism", scram, "--password-stdin", input=name + "-pw\n")
    return name, name + "-pw"


def confluent_consume(bootstrap, conf, group, want, deadline_s=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, **conf})
    got = []
    try:
        c.subscribe([TOPIC])
        deadline = time.monotonic() + deadline_s
        while len(set(got) & set(want)) < len(want) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            got.append(m.value().decode())
        if got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka(gate, mechanism):
    user, pw = new_user(gate, mechanism)
    conf = librdkafka_sasl(mechanism, user, pw, gate.ca)
    before = gate.successes(mechanism)
    p = Producer({"bootstrap.servers": gate.bootstrap, "acks": "all", **conf})
    errors = []
    for v in values("ck-" + user):
        p.produce(TOPIC, v.encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors
    got = confluent_consume(gate.bootstrap, conf, "g-" + user, values("ck-" + user))
    assert set(values("ck-" + user)) <= set(got)
    assert gate.successes(mechanism) > before


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat(gate, mechanism):
    user, pw = new_user(gate, mechanism)
    sasl = kcat_sasl_args(mechanism, user, pw, gate.ca)
    want = values("kcat-" + user)
    run(["kcat", "-b", gate.bootstrap, *sasl, "-P", "-t", TOPIC, "-X", "acks=all"],
        input=("\n".join(want) + "\n").encode(), timeout=60)
    # -G: a balanced consumer group; -e: exit once every partition is read to its end.
    out = run(["kcat", "-b", gate.bootstrap, *sasl, "-G", "g-" + user, "-X",
               "auto.offset.reset=earliest", "-o", "beginning", "-e", "-q", "-f", "%s\n", TOPIC],
              timeout=90).stdout.decode()
    assert set(want) <= set(out.split()), out[-2000:]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python(gate, mechanism):
    user, pw = new_user(gate, mechanism)
    conf = {"security_protocol": "SASL_SSL" if gate.ca else "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism, "sasl_plain_username": user,
            "sasl_plain_password": pw, "request_timeout_ms": 15000,
            "api_version_auto_timeout_ms": 10000}
    if gate.ca:
        conf["ssl_cafile"] = gate.ca
    want = values("kpy-" + user)
    p = KafkaProducer(bootstrap_servers=gate.bootstrap, acks="all", **conf)
    try:
        for f in [p.send(TOPIC, v.encode()) for v in want]:
            f.get(30)
    finally:
        p.close(10)
    c = KafkaConsumer(TOPIC, bootstrap_servers=gate.bootstrap, group_id="g-" + user,
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


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_librdkafka_212_client(gate, mechanism):
    """librdkafka 2.12 (RFC-exact SCRAM nonce, KIP-368 capable) next to Debian's 2.0.2."""
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    user, pw = new_user(gate, mechanism)
    xs = []
    for k, v in librdkafka_sasl(mechanism, user, pw, gate.ca).items():
        xs += ["-X", f"{k}={v}"]
    cp = run([RDK_CLIENT, "produce", "-b", gate.bootstrap, "-t", TOPIC, "-n", str(COUNT), "-p",
              "r-" + user, *xs], timeout=90)
    assert json.loads(cp.stdout)["acked"] == COUNT
    cp = run([RDK_CLIENT, "consume", "-b", gate.bootstrap, "-t", TOPIC, "-g", "g-" + user, "-n",
              str(COUNT), *xs], timeout=120)
    out = json.loads(cp.stdout)
    assert out["version"].startswith("2.12.")
    assert {v for _, _, v in out["records"]} >= {f"r-{user}-{i}" for i in range(COUNT)}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafkajs(gate, mechanism):
    user, pw = new_user(gate, mechanism)
    cp = run(["node", NODE_SCRIPT, json.dumps({
        "bootstrap": gate.bootstrap, "topic": TOPIC, "count": COUNT, "group": "g-" + user,
        "mechanism": mechanism.lower(), "username": user, "password": pw, "prefix": "js-" + user,
        "ca": gate.ca})],
        timeout=120)
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["acked"] == COUNT
    assert set(out["consumed"]) >= {f"js-{user}-{i}" for i in range(COUNT)}
