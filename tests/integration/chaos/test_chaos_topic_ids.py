"""Topic-scoped faults on Fetch v13+, where requests name topics by id, not by name: kgate has to
learn the ids from the Metadata responses it forwards. The reader is a small C consumer
(rdk_reader.c) linked with librdkafka 2.12 (Fetch up to v16), against the 2.12 dev cluster.

librdkafka's `debug=fetch` log shows the Fetch version used, so the test checks that topic ids
were really in play."""

import os
import re
import subprocess

import pytest

from chaoslib import produce_ok, producer, values
from chaosgate import ChaosGate, DevCluster
from kghelpers import ROOT, run

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = os.path.join(ROOT, "build", "deps")
LIBRDKAFKA_212 = os.path.join(DEPS, "librdkafka-2.12")


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


BLOCKED = ("kgate bug: kgate closes the 2.12 client's connections with \"cannot decode Metadata "
           "v12 response from backend to rewrite it\" (the 2.12 dev cluster ends the response "
           "with one byte more than the layout; src/route/kg_rewrite.c decoded_all() refuses "
           "trailing bytes), so no librdkafka 2.12 client works through kgate. "
           "See test_reader_uses_topic_ids.")


def require_modern_client(dc, gate, reader):
    """The chaos tests below need a 2.12 client that works through kgate at all; when it does
    not (the bug test_reader_uses_topic_ids shows), they are reported as expected failures
    with the reason instead of each waiting for records that cannot come."""
    stored(dc, "probe", [b"probe"])
    if read(reader, gate.bootstrap, "probe", 1, seconds=10).values != [b"probe"]:
        pytest.xfail(BLOCKED)


def test_reader_uses_topic_ids(modern, rdk_reader):
    """The premise of this file: through kgate, the 2.12 client fetches with v13+."""
    dc, gate = modern
    stored(dc, "b1", values("v", 3))
    r = read(rdk_reader, gate.bootstrap, "b1", 3, seconds=10)
    assert r.values == values("v", 3), "\n".join(
        [BLOCKED, "kgate log:"] + gate.stderr_text().splitlines()[-5:])
    versions = r.fetch_versions()
    assert versions and max(versions) >= 13, (versions, r.stderr[-2000:])


def test_corrupt_on_fetch_by_topic_id(modern, rdk_reader):
    dc, gate = modern
    require_modern_client(dc, gate, rdk_reader)
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
    require_modern_client(dc, gate, rdk_reader)
    sent = values("dup", 10)
    stored(dc, "a1", sent)
    stored(dc, "b1", sent)
    gate.add({"type": "duplicate-records", "topic": "a1"})
    hit = read(rdk_reader, gate.bootstrap, "a1", 2 * len(sent))
    assert sorted(hit.values) == sorted(sent * 2), hit.values
    assert read(rdk_reader, gate.bootstrap, "b1", len(sent)).values == sent


def test_fetch_error_by_topic_id(modern, rdk_reader):
    dc, gate = modern
    require_modern_client(dc, gate, rdk_reader)
    sent = values("err", 5)
    stored(dc, "a1", sent)
    stored(dc, "b1", sent)
    rule = gate.add({"type": "broken-brokers", "topic": "a1",
                     "errors": {"fetch": "NOT_LEADER_OR_FOLLOWER"}})
    starved = read(rdk_reader, gate.bootstrap, "a1", len(sent), seconds=3)
    assert starved.values == []
    assert gate.injected(rule["id"]) >= 1
    assert read(rdk_reader, gate.bootstrap, "b1", len(sent)).values == sent
    gate.remove(rule["id"])
    assert read(rdk_reader, gate.bootstrap, "a1", len(sent)).values == sent
