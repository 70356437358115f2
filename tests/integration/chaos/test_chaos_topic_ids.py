"""Faults at modern protocol versions, with a librdkafka 2.12 client against the 2.12 dev cluster
(the Python clients link Debian's librdkafka 2.0.2, so they never use these versions):

- topic-scoped faults on Fetch v13+, where requests name topics by id, not by name: kgate has to
  learn the ids from the Metadata responses it forwards. The reader is a small C consumer
  (rdk_reader.c) linked with librdkafka 2.12 (Fetch up to v16);
- faults on Produce v10+ (flexible versions): the writer is build/deps/rdk-client-2.12.

librdkafka's `debug` log shows the Fetch and Produce versions used, so each test checks that the
modern versions were really in play."""

import json
import os
import re
import subprocess

import pytest

from chaoslib import produce_ok, producer, read_topic, values
from chaosgate import ChaosGate, DevCluster
from kghelpers import ROOT, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = os.path.join(ROOT, "build", "deps")
LIBRDKAFKA_212 = os.path.join(DEPS, "librdkafka-2.12")
RDK_CLIENT_212 = os.path.join(DEPS, "rdk-client-2.12")


@pytest.fixture(scope="session")
def rdk_reader(tmp_path_factory):
    lib = os.path.join(LIBRDKAFKA_212, "src", "librdkafka.a")
    if not os.path.exists(lib):
        pytest.fail(f"{lib} missing: run scripts/test-setup")
    with open(os.path.join(LIBRDKAFKA_212, "Makefile.config")) as f:
        libs = " ".join(l[len("LIBS+="):].strip() for l in f if l.startswith("LIBS+="))
    out = str(tmp_path_factory.mktemp("rdk") / "rdk_reader")
    run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-pthread", "-Wall", "-Wextra", "-Werror",
         "-isystem", os.path.join(DEPS, "include"), "-o", out,
         os.path.join(HERE, "rdk_reader.c"), lib] + libs.split(), timeout=120)
    return out


class Reading:
    def __init__(self, cp):
        self.stdout = cp.stdout.decode()
        self.stderr = cp.stderr.decode()
        lines = self.stdout.splitlines()
        self.version = lines[0].split()[1] if lines and lines[0].startswith("version") else None
        self.records = []
        self.errors = []
        for line in lines[1:]:
            parts = line.split()
            if parts and parts[0] == "R":
                self.records.append((int(parts[1]), int(parts[2]),
                                     bytes.fromhex(parts[3]) if len(parts) > 3 else b""))
            elif parts and parts[0] == "E":
                self.errors.append(parts[2])

    @property
    def values(self):
        return [v for _, _, v in self.records]

    def fetch_versions(self):
        return {int(v) for v in re.findall(r"Fetch.{0,40}\bv(\d+)\b", self.stderr)} | \
            {int(v) for v in re.findall(r"\bFetch \(v(\d+)\)", self.stderr)}


def read(reader, bootstrap, topic, want, seconds=30, client_id="rdk212-reader", *props):
    cp = subprocess.run([reader, bootstrap, topic, "1", str(want), str(seconds), client_id,
                         "debug=fetch,protocol", *props],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=seconds + 30)
    assert cp.returncode == 0, cp.stderr.decode()[-3000:]
    r = Reading(cp)
    assert r.version and r.version.startswith("2.12"), r.stdout[:200]
    return r


@pytest.fixture
def modern(tmp_path):
    dc = DevCluster("2.12", tmp_path, topics=["a1:1", "b1:1", "probe:1"], name="modern")
    gate = None
    try:
        gate = ChaosGate(dc, tmp_path)
        yield dc, gate
    finally:
        if gate:
            gate.stop()
        dc.stop()


def stored(dc, topic, vals):
    produce_ok(producer(dc.bootstrap, **{"linger.ms": 20}), topic, vals)


def test_reader_uses_topic_ids(modern, rdk_reader):
    """The premise of this file: through kgate, the 2.12 client fetches with v13+."""
    dc, gate = modern
    stored(dc, "b1", values("v", 3))
    r = read(rdk_reader, gate.bootstrap, "b1", 3, seconds=10)
    assert r.values == values("v", 3), "\n".join(
        ["the 2.12 client read nothing through kgate; kgate log:"]
        + gate.stderr_text().splitlines()[-5:])
    versions = r.fetch_versions()
    assert versions and max(versions) >= 13, (versions, r.stderr[-2000:])


def test_corrupt_on_fetch_by_topic_id(modern, rdk_reader):
    dc, gate = modern
    sent = values("tid", 10)
    stored(dc, "a1", sent)
    stored(dc, "b1", sent)
    rule = gate.add({"type": "corrupt-records", "topic": "a1", "bytes": 4})

    hit = read(rdk_reader, gate.bootstrap, "a1", len(sent))
    assert max(hit.fetch_versions()) >= 13
    assert len(hit.values) == len(sent), (hit.values, hit.errors)
    for orig, seen in zip(sent, hit.values):
        assert len(seen) == len(orig) + 4 and seen.startswith(orig), (orig, seen)
    assert gate.injected(rule["id"]) >= 1
    assert read(rdk_reader, gate.bootstrap, "b1", len(sent)).values == sent


def test_duplicate_on_fetch_by_topic_id(modern, rdk_reader):
    dc, gate = modern
    sent = values("dup", 10)
    stored(dc, "a1", sent)
    stored(dc, "b1", sent)
    gate.add({"type": "duplicate-records", "topic": "a1"})
    hit = read(rdk_reader, gate.bootstrap, "a1", 2 * len(sent))
    assert sorted(hit.values) == sorted(sent * 2), hit.values
    assert read(rdk_reader, gate.bootstrap, "b1", len(sent)).values == sent


def test_fetch_error_by_topic_id(modern, rdk_reader):
    dc, gate = modern
    sent = values("err", 5)
    stored(dc, "a1", sent)
    stored(dc, "b1", sent)
    rule = gate.add({"type": "broken-brokers", "topic": "a1",
                     "errors": {"fetch": "NOT_LEADER_OR_FOLLOWER"}})
    # Short reads, repeated until the rule has failed three fetches: none returns a record.
    def starved():
        assert read(rdk_reader, gate.bootstrap, "a1", len(sent), seconds=2).values == []
        return gate.injected(rule["id"]) >= 3

    wait_for(starved, 120, 0, "3 injected fetch errors")
    assert read(rdk_reader, gate.bootstrap, "b1", len(sent)).values == sent
    gate.remove(rule["id"])
    assert read(rdk_reader, gate.bootstrap, "a1", len(sent)).values == sent


# ---------------------------------------------------------------------------------------------
# Produce v10+


class Produced:
    """What rdk-client-2.12 reported for one produce run, and the Produce versions it used."""

    def __init__(self, cp):
        self.returncode = cp.returncode
        self.stderr = cp.stderr.decode()
        self.report = json.loads(cp.stdout.decode().strip().splitlines()[-1])
        self.versions = {int(v) for v in re.findall(r"\bProduceRequest \(v(\d+)\b",
                                                     self.stderr)}


def produce_212(bootstrap, topic, count, prefix, *props):
    if not os.access(RDK_CLIENT_212, os.X_OK):
        pytest.fail(f"{RDK_CLIENT_212} missing: run scripts/test-setup")
    argv = [RDK_CLIENT_212, "produce", "-b", bootstrap, "-t", topic, "-n", str(count),
            "-p", prefix, "-X", "debug=protocol", "-X", "linger.ms=20"]
    for prop in props:
        argv += ["-X", prop]
    out = Produced(run(argv, timeout=90, check=False))
    assert out.report["version"].startswith("2.12"), out.report
    assert out.versions and min(out.versions) >= 10, (out.versions, out.stderr[-2000:])
    return out


def sent_values(prefix, count):
    """The values rdk-client produces: "<prefix>-<i>"."""
    return [f"{prefix}-{i}".encode() for i in range(count)]


def test_produce_v10_error_reaches_the_client(modern):
    dc, gate = modern
    rule = gate.add({"type": "broken-brokers", "topic": "a1",
                     "errors": {"produce": "NOT_ENOUGH_REPLICAS"}})
    hit = produce_212(gate.bootstrap, "a1", 5, "err", "retries=0")
    assert hit.returncode == 1 and hit.report["acked"] == 0, hit.report
    assert hit.report["failed"] == 5, hit.report
    assert "Not enough in-sync replicas" in hit.report["first_error"], hit.report
    assert gate.injected(rule["id"]) >= 1
    # Reject mode: nothing reached the broker. Another topic is served.
    ok = produce_212(gate.bootstrap, "b1", 5, "ok", "retries=0")
    assert ok.returncode == 0 and ok.report["acked"] == 5, ok.report
    assert read_topic(dc.bootstrap, "a1", 1).values == []
    assert read_topic(dc.bootstrap, "b1", 1).values == sent_values("ok", 5)


def test_corrupt_on_produce_v10(modern):
    dc, gate = modern
    rule = gate.add({"type": "corrupt-records", "topic": "a1", "on": "produce", "bytes": 6})
    out = produce_212(gate.bootstrap, "a1", 10, "cp")
    assert out.returncode == 0 and out.report["acked"] == 10, out.report
    assert gate.injected(rule["id"]) >= 1
    stored = read_topic(dc.bootstrap, "a1", 1, **{"check.crcs": True})
    assert stored.errors == [] and len(stored.values) == 10, (stored.errors, stored.values)
    for orig, seen in zip(sent_values("cp", 10), stored.values):
        assert len(seen) == len(orig) + 6 and seen.startswith(orig), (orig, seen)


def test_duplicate_on_produce_v10(modern):
    dc, gate = modern
    gate.add({"type": "duplicate-records", "topic": "a1", "on": "produce"})
    out = produce_212(gate.bootstrap, "a1", 10, "dp", "enable.idempotence=false")
    assert out.returncode == 0 and out.report["acked"] == 10, out.report
    stored = read_topic(dc.bootstrap, "a1", 1).values
    assert sorted(stored) == sorted(sent_values("dp", 10) * 2), stored
    out = produce_212(gate.bootstrap, "b1", 10, "once", "enable.idempotence=false")
    assert read_topic(dc.bootstrap, "b1", 1).values == sent_values("once", 10)
