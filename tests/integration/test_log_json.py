"""log.format: json: every line kgate writes to stderr while it serves is one JSON object with
ts, level and msg, through start-up, client traffic (debug connection lines), a failover, a
chaos rule, a bad admin request and shutdown; log.format: text keeps the plain lines."""

import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "failover"))

from fohelpers import DevCluster, Kgate  # noqa: E402

LEVELS = {"debug", "info", "warn", "error"}


def exercise(gate, reason):
    """Things that log: clients connecting and closing, a switch, a chaos rule, a refusal."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": gate.bootstrap("default"), "broker.address.family": "v4",
                  "client.id": 'quote" and \\ backslash', "log_level": 3})
    for i in range(10):
        p.produce("t1", value=f"m{i}".encode())
    assert p.flush(60) == 0, "messages still queued after 60s"
    r = gate.http("POST", "/v1/chaos/rules", {"type": "latency", "topic": "t1", "delay_ms": 1})
    assert r.status == 201, r.text
    assert gate.http("DELETE", f"/v1/chaos/rules/{r.json['id']}").status == 204
    reply, _, _ = gate.switch("default", reason=reason)
    assert reply.status == 200, reply.text
    assert gate.http("POST", "/v1/vclusters/nope/failover", {"reason": "x"}).status == 404
    del p


def run_gate(tmp_path, fmt, reason):
    clusters = {n: DevCluster(n, "2.0.2", {"t1": 2}, tmp_path) for n in ("east", "west")}
    gate = Kgate(clusters, [("default", "east", "west")], tmp_path,
                 extra_lines=[f"log: {{ level: debug, format: {fmt} }}"])
    try:
        gate.start()
        exercise(gate, reason)
    finally:
        rc = gate.stop()
        for dc in clusters.values():
            dc.stop()
    assert rc == 0, f"kgate exited {rc}:\n{gate.log()[-3000:]}"
    return gate.log()


def test_json_lines(tmp_path):
    text = run_gate(tmp_path, "json", 'a "quoted"\nreason')
    lines = text.splitlines()
    assert len(lines) > 10, text
    records = []
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"line {n} is not JSON ({e}): {line!r}")
        assert isinstance(rec, dict) and set(rec) == {"ts", "level", "msg"}, line
        assert rec["level"] in LEVELS, line
        datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        records.append(rec)
    msgs = [r["msg"] for r in records]
    assert any("switched east -> west" in m for m in msgs), msgs
    assert any('a "quoted"\nreason' in m for m in msgs), msgs  # escaped, and read back whole
    assert {r["level"] for r in records} >= {"debug", "info"}


def test_text_lines_unchanged(tmp_path):
    lines = run_gate(tmp_path, "text", "drill").splitlines()
    assert len(lines) > 10
    for line in lines:
        ts, level = line.split()[:2]
        datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert level in LEVELS, line
    switched = [line for line in lines if "switched east -> west" in line]
    assert len(switched) == 1 and re.match(r"\S+Z info  vcluster default switched", switched[0])
