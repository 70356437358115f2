"""Rules from the configuration file's `chaos:` list: active at start, replaced as a whole on
SIGHUP (and POST /v1/reload), API rules left alone, a bad file changing nothing."""

import json
import re
import subprocess

from confluent_kafka import KafkaError

from chaoslib import produce, strict_producer, values
from kghelpers import wait_for

NER = {"errors": {"produce": "NOT_ENOUGH_REPLICAS"}}


def rejects(gate, topic):
    """True when a produce to TOPIC fails with the rule's error, False when it is delivered."""
    d = produce(strict_producer(gate.bootstrap), topic, values("cfg", 2))
    if d.error_codes() == [KafkaError.NOT_ENOUGH_REPLICAS] * 2:
        return True
    assert d.errors == [], d.reports
    return False


def rule_ids(gate):
    return sorted(r["id"] for r in gate.rules())


def test_config_rules_at_start_and_on_sighup(gate_factory, cluster):
    gate = gate_factory(chaos=[{"type": "broken-brokers", "id": "cfg-a1", "topic": "a1", **NER},
                               {"type": "latency", "id": "cfg-lat", "topic": "c1",
                                "delay_ms": 1}])
    listed = {r["id"]: r for r in gate.rules()}
    assert sorted(listed) == ["cfg-a1", "cfg-lat"]
    assert all(r["source"] == "config" for r in listed.values())
    assert rejects(gate, "a1") and not rejects(gate, "b1")
    api_rule = gate.add({"type": "broken-brokers", "id": "api-b3", "topic": "b3", **NER})

    # Edit the file: the a1 rule goes, a b1 rule comes; SIGHUP.
    gate.write_config([{"type": "broken-brokers", "id": "cfg-b1", "topic": "b1", **NER}])
    gate.sighup()
    wait_for(lambda: rule_ids(gate) == ["api-b3", "cfg-b1"], 15, 0.1,
             "the reloaded rule set")
    assert not rejects(gate, "a1")
    assert rejects(gate, "b1")
    assert rejects(gate, "b3"), "the API rule did not survive the reload"
    assert gate.rule(api_rule["id"])["source"] == "api"


def test_a_bad_file_changes_nothing(gate_factory, cluster):
    gate = gate_factory(chaos=[{"type": "broken-brokers", "id": "cfg-a1", "topic": "a1", **NER}])
    gate.write_config([{"type": "broken-brokers", "id": "cfg-b1", "topic": "b1", **NER},
                       {"type": "latency", "topic": "b3"}])  # no delay_ms
    gate.sighup()
    wait_for(lambda: "not reloaded" in gate.stderr_text(), 15, 0.1, "the refused reload")
    assert re.search(r'chaos\[1\].*"delay_ms"', gate.stderr_text()), gate.stderr_text()[-2000:]
    assert gate.alive()
    assert rule_ids(gate) == ["cfg-a1"]
    assert rejects(gate, "a1") and not rejects(gate, "b1")


def test_reload_through_the_api(gate_factory, cluster):
    gate = gate_factory(chaos=[])
    assert gate.rules() == []
    gate.write_config([{"type": "broken-brokers", "id": "cfg-a3", "topic": "a3", **NER}])
    status, body = gate.request("POST", "/v1/reload")
    assert status == 200 and body["chaos_rules"] == 1, (status, body)
    assert rule_ids(gate) == ["cfg-a3"] and rejects(gate, "a3")

    gate.write_config([{"type": "broken-brokers", "id": "cfg-a3", "topic": "a3", "rate": 150}])
    status, body = gate.request("POST", "/v1/reload")
    assert status == 400, (status, body)
    assert rule_ids(gate) == ["cfg-a3"] and rejects(gate, "a3")


def test_reload_api_names_the_bad_field(gate_factory, cluster):
    """docs/api.md: POST /v1/reload answers "400 with the file's errors when it does not load";
    for a bad chaos rule the answer should name it as the log does (chaos[0]: field "rate")."""
    gate = gate_factory(chaos=[])
    gate.write_config([{"type": "broken-brokers", "id": "cfg-a3", "topic": "a3", "rate": 150}])
    status, body = gate.request("POST", "/v1/reload")
    assert status == 400, (status, body)
    assert re.search(r'chaos\[0\]', gate.stderr_text()) and '"rate"' in gate.stderr_text()
    assert '"rate"' in body["error"], f"the API answer does not name the field: {body}"


def test_check_names_the_bad_rule(gate_factory, cluster, tmp_path):
    gate = gate_factory(chaos=[])
    text = gate.write_config([{"type": "latency", "topic": "a1", "delay_ms": 5},
                              {"type": "latency", "topic": "a1"}])
    path = tmp_path / "check.yaml"
    path.write_text(text)
    cp = subprocess.run([gate.kgate_bin, "check", "-c", str(path)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=30)
    out = (cp.stdout + cp.stderr).decode()
    assert cp.returncode != 0, out
    line = text.splitlines().index(
        "  - " + json.dumps({"type": "latency", "topic": "a1"})) + 1
    assert re.search(rf"check\.yaml:{line}(:\d+)?:.*\"delay_ms\"", out), out


def test_config_rules_are_not_stored(gate_factory, cluster):
    gate = gate_factory(chaos=[{"type": "broken-brokers", "id": "cfg-a1", "topic": "a1", **NER}])
    gate.add({"type": "broken-brokers", "id": "api-b1", "topic": "b1", **NER})
    gate.stop()
    gate.write_config([])
    gate.start()
    # The file no longer has the config rule; the API rule came back from the state store.
    assert rule_ids(gate) == ["api-b1"]
    assert not rejects(gate, "a1") and rejects(gate, "b1")


def test_config_rule_expires(gate_factory, cluster):
    gate = gate_factory(chaos=[{"type": "broken-brokers", "id": "cfg-short", "topic": "a1",
                                "for": "2s", **NER}])
    # The expiry is an event kgate logs (whether or not it comes before the first look).
    wait_for(lambda: re.search(r"rule cfg-short \(broken-brokers\) expired", gate.stderr_text()),
             60, 0.1, "cfg-short to expire")
    assert gate.rule("cfg-short") is None
    assert not rejects(gate, "a1")
