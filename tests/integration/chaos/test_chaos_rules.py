"""Rules through the admin API (and the CLI): validation naming the wrong field, listing,
removal, expiry (the effect stops), persistence across a restart, audit entries, metrics,
and auth-failure having no effect where clients do not authenticate."""

import json
import re
import subprocess
import urllib.request

from confluent_kafka import KafkaError

from chaoslib import produce, produce_ok, read_topic, strict_producer, values

NER = {"errors": {"produce": "NOT_ENOUGH_REPLICAS"}}

BAD_RULES = [
    ({"type": "no-such-fault"}, '"type"'),
    ({"rate": 5}, '"type"'),
    ({"type": "broken-brokers", "errors": {"fetch": "NOT_ENOUGH_REPLICAS"}}, '"errors.fetch"'),
    ({"type": "broken-brokers", "errors": {"produce": "OFFSET_OUT_OF_RANGE"}},
     '"errors.produce"'),
    ({"type": "broken-brokers", "errors": {"produce": "NO_SUCH_ERROR"}}, '"errors.produce"'),
    ({"type": "broken-brokers", "rate": 150}, '"rate"'),
    ({"type": "broken-brokers", "rate": -1}, '"rate"'),
    ({"type": "broken-brokers", "topic": "orders.("}, '"topic"'),
    ({"type": "broken-brokers", "client_id": "[a-"}, '"client_id"'),
    ({"type": "broken-brokers", "for": "soon"}, '"for"'),
    ({"type": "broken-brokers", "colour": "red"}, '"colour"'),
    ({"type": "latency"}, '"delay_ms"'),
    ({"type": "leader-election", "errors": ["NOT_ENOUGH_REPLICAS"]}, '"errors[0]"'),
    ({"type": "slow-broker", "max_ms": 10}, '"broker"'),
    ({"type": "down", "topic": "a1"}, '"topic"'),
    ({"type": "bandwidth"}, '"kib_per_s"'),
    ({"type": "corrupt-records", "crc": "maybe"}, '"crc"'),
    ({"type": "invalid-schema-id"}, '"schema_id"'),
]


def test_bad_rules_are_refused_naming_the_field(gate):
    wrong = []
    for rule, field in BAD_RULES:
        status, body = gate.post(rule)
        if status != 400 or not isinstance(body, dict) or field not in body.get("error", ""):
            wrong.append((rule, field, status, body))
    assert wrong == [], "\n".join(map(str, wrong))
    assert gate.rules() == []


def test_bodies_that_are_not_a_rule(gate):
    for raw in (b"{not json", b"[1, 2]", b""):
        status, body = gate.post(raw)
        assert status == 400, (raw, status, body)
        assert body and body.get("error"), (raw, body)
    assert gate.rules() == []


def test_add_get_list_remove(gate):
    rule = gate.add({"type": "latency", "id": "my-latency", "delay_ms": 5, "topic": "a1",
                     "description": "checkout tail latency"})
    assert rule["id"] == "my-latency" and rule["source"] == "api" and rule["rate"] == 100
    assert "expires_at" not in rule and rule["created_at"]
    listed = gate.rules()
    assert [r["id"] for r in listed] == ["my-latency"]
    assert gate.rule("my-latency")["description"] == "checkout tail latency"

    status, body = gate.post({"type": "latency", "id": "my-latency", "delay_ms": 5})
    assert 400 <= status < 500, (status, body)  # the id is taken

    gate.remove("my-latency")
    assert gate.rule("my-latency") is None
    assert gate.request("DELETE", "/v1/chaos/rules/my-latency")[0] == 404
    assert gate.rules() == []


def test_expiry_removes_the_rule_and_its_effect(gate, cluster):
    p = strict_producer(gate.bootstrap)
    produce_ok(p, "b1", values("warm-up", 1))
    # The rule has to be seen acting while it is listed: when it is still listed after a
    # produce, that produce was answered under it. On a machine too slow to finish one before
    # a short rule expires, the same check is repeated with a longer lifetime (bounded).
    delivered = []
    for seconds in (2, 10, 60):
        rule = gate.add({"type": "broken-brokers", "topic": "a1", "for": f"{seconds}s", **NER})
        assert rule["expires_at"]
        d = produce(p, "a1", values(f"before-{seconds}", 3))
        if gate.rule(rule["id"]) is not None:
            break
        delivered += [r[0] for r in d.ok]  # answered around the expiry: either way is right
    else:
        raise AssertionError("no produce finished while the rule was listed, even for 60s")
    assert d.error_codes() == [KafkaError.NOT_ENOUGH_REPLICAS] * 3

    gate.wait_rule_gone(rule["id"], timeout=seconds + 60)
    assert gate.rules() == []
    produce_ok(p, "a1", values("after", 3))
    assert read_topic(cluster.bootstrap, "a1", 1).values == delivered + values("after", 3)
    assert re.search(rf"rule {rule['id']} \(broken-brokers\) expired", gate.stderr_text()), \
        gate.stderr_text()[-2000:]


def audit_types(gate):
    status, body = gate.request("GET", "/v1/audit?after=0&limit=1000")
    assert status == 200, body
    return [(e["type"], e["details"]) for e in body["entries"]]


def test_audit_and_metrics(gate, cluster):
    rule = gate.add({"type": "broken-brokers", "topic": "a1", **NER})
    produce(strict_producer(gate.bootstrap), "a1", values("m", 2))
    with urllib.request.urlopen(gate.admin + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    found = re.search(r'kgate_chaos_injected_total\{[^}]*rule="%s"[^}]*\} (\d+)' % rule["id"],
                      metrics)
    assert found and int(found.group(1)) >= 1, [l for l in metrics.splitlines() if "chaos" in l]
    gate.remove(rule["id"])

    entries = audit_types(gate)
    kinds = [t for t, _ in entries]
    assert "chaos.rule.add" in kinds and "chaos.rule.remove" in kinds, kinds
    added = [d for t, d in entries if t == "chaos.rule.add"][0]
    assert rule["id"] in json.dumps(added)
    status, body = gate.request("GET", "/v1/audit/verify")
    assert status == 200 and body["intact"] is True, body


def test_api_rules_survive_a_restart(gate, cluster):
    rule = gate.add({"type": "broken-brokers", "topic": "a1", "for": "10m", **NER})
    gate.restart()
    listed = gate.rule(rule["id"])
    assert listed is not None, gate.rules()
    assert listed["expires_at"] == rule["expires_at"]
    d = produce(strict_producer(gate.bootstrap), "a1", values("again", 2))
    assert d.error_codes() == [KafkaError.NOT_ENOUGH_REPLICAS] * 2


def test_auth_failure_acts_only_where_clients_authenticate(gate, cluster):
    """auth-failure fails SASL exchanges at kgate (tests/integration/security/
    test_sasl_chaos_failover.py shows it on an `auth: gateway` virtual cluster); here the virtual
    cluster has no authentication, so the rule has nothing to act on."""
    rule = gate.add({"type": "auth-failure", "client_id": "auth-.*", "for": "5m"})
    assert gate.rule(rule["id"])["type"] == "auth-failure"
    # auth: none, so no SASL exchange: the matching client is served normally.
    p = strict_producer(gate.bootstrap, client_id="auth-1")
    produce_ok(p, "a1", values("auth", 5))
    assert read_topic(gate.bootstrap, "a1", 1, client_id="auth-reader").values == \
        values("auth", 5)
    assert gate.injected(rule["id"]) == 0


# ---------------------------------------------------------------------------------------------
# CLI


def cli(gate, *args, check=True):
    cp = subprocess.run([gate.kgate_bin, "chaos", "--admin", gate.admin, *args],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if check:
        assert cp.returncode == 0, (args, cp.returncode, cp.stdout, cp.stderr)
    return cp


def test_cli_add_list_rm(gate, cluster):
    helped = subprocess.run([gate.kgate_bin, "chaos", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=10)
    assert helped.returncode == 0, f"`kgate chaos --help` failed: {helped.stderr.decode()[-500:]}"
    assert b"broken-brokers" in helped.stdout, helped.stdout.decode()[-1000:]
    cli(gate, "add", "broken-brokers", "--topic", "a1", "--rate", "100",
        "--errors", "produce=NOT_ENOUGH_REPLICAS", "--for", "5m", "--id", "cli-rule")
    listed = json.loads(cli(gate, "list", "--json").stdout)
    rules = listed["rules"] if isinstance(listed, dict) else listed
    assert [r["id"] for r in rules] == ["cli-rule"]
    assert rules[0]["errors"] == {"produce": "NOT_ENOUGH_REPLICAS"} and rules[0]["expires_at"]
    assert "cli-rule" in cli(gate, "list").stdout.decode()

    d = produce(strict_producer(gate.bootstrap), "a1", values("cli", 3))
    assert d.error_codes() == [KafkaError.NOT_ENOUGH_REPLICAS] * 3

    cli(gate, "rm", "cli-rule")
    assert gate.rules() == []
    produce_ok(strict_producer(gate.bootstrap), "a1", values("cli-after", 3))

    bad = cli(gate, "add", "latency", "--topic", "a1", check=False)
    assert bad.returncode == 1 and b'"delay_ms"' in bad.stderr, bad
    bad = cli(gate, "add", "broken-brokers", "--rate", "150", check=False)
    assert bad.returncode == 1 and b'"rate"' in bad.stderr, bad
    assert cli(gate, "rm", "no-such-rule", check=False).returncode == 1
    assert gate.rules() == []
