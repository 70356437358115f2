"""Measured drills (issue 10, item 8): `kgate drill run` drives its own producers and consumer
group through kgate, performs the switches the drill file lists, and reports per client RTO,
RPO (acknowledged records missing on the side active at the end), duplicates and errors, then
records the result through the admin API (stored, audited with its SHA-256).

The report is checked against what the test reads itself, straight from both clusters: the dev
clusters do not replicate, so every record the drill's producers wrote to east before the
failover is missing on west, and the drill must count exactly those as lost by the failover."""

import json

import pytest

TOPIC = "fo-drill"


def drill_records(cluster, run):
    """{(producer, seq)} of the drill run's records stored on cluster, read directly."""
    out = set()
    for _, _, value in cluster.read_all(TOPIC):
        parts = value.split()
        if len(parts) == 5 and parts[0] == "kgdrill" and parts[1] == run:
            out.add((int(parts[2]), int(parts[3])))
    return out


def write_drill(tmp_path, kg, **overrides):
    drill = {
        "name": "failover east to west under load",
        "hypothesis": "producers recover within 10 s and nothing acknowledged is lost",
        "vcluster": "default",
        "bootstrap": kg.bootstrap("default"),
        "topic": TOPIC,
        "workload": {"producers": 2, "rate": 40, "consumers": 1,
                     "producer_config": {"acks": "all", "linger.ms": "10"},
                     "consumer_config": {"session.timeout.ms": "6000"}},
        "between": "2s",
        "consumer_wait": "25s",
        "steps": [{"action": "failover", "to": "west", "reason": "drill test"}],
        "expect": {"max_producer_rto": "10s", "max_lost": 0, "max_client_errors": 0},
    }
    drill.update(overrides)
    path = tmp_path / "drill.json"
    path.write_text(json.dumps(drill))
    return str(path)


@pytest.mark.guard(240)
def test_drill_measures_a_failover_and_is_audited(make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east="2.12", west="2.12")
    kg = make_kgate(clusters)
    run = kg.cli("drill", "run", write_drill(tmp_path, kg), "--json", timeout=200)
    assert run.returncode == 3, (run.returncode, run.stderr[-3000:])  # max_lost cannot hold
    result = json.loads(run.stdout)
    assert "recorded as drill " + result["run"] in run.stderr, run.stderr[-2000:]
    assert result["outcome"] == "failed"
    assert result["configuration"]["producer_config"] == {"acks": "all", "linger.ms": "10"}
    step = result["steps"][0]
    assert step["status"] == 200 and step["to"] == "west", step
    assert step["result"]["to"] == "west"

    producers = [c for c in result["clients"] if c["kind"] == "producer"]
    consumers = [c for c in result["clients"] if c["kind"] == "consumer"]
    assert len(producers) == 2 and len(consumers) == 1, result["clients"]
    for c in producers + consumers:
        assert c["errors"] == 0, c
        assert c["rto_ms"][0] is not None and c["rto_ms"][0] >= 0, c
    assert consumers[0]["received"] > 0

    # What the test finds on each cluster, read directly.
    east, west = drill_records(clusters["east"], result["run"]), \
        drill_records(clusters["west"], result["run"])
    assert east and west, (len(east), len(west))
    data = result["data"]
    assert data["acked"] == sum(p["acked"] for p in producers)
    assert data["acked"] == len(east | west), (data, len(east), len(west))
    assert data["found_on_active_side"] == len(west)
    assert step["lost"] == len(east - west) == data["lost"], (step, data)
    assert data["lost_without_switch"] == 0
    assert step["rpo_ms"] > 0

    lost_expectation = [e for e in result["expectations"] if e["name"] == "max_lost"][0]
    assert lost_expectation == {"name": "max_lost", "expected": 0, "observed": data["lost"],
                                "result": "fail"}
    rto = [e for e in result["expectations"] if e["name"] == "max_producer_rto_ms"][0]
    assert rto["observed"] == max(p["rto_ms"][0] for p in producers)

    # Recorded: listed, served as Markdown, and audited with its digest.
    listed = json.loads(kg.cli("drill", "list", "--json").stdout)["drills"]
    assert [d["id"] for d in listed] == [result["run"]]
    assert listed[0]["lost"] == data["lost"] and listed[0]["outcome"] == "failed"
    md = kg.cli("drill", "report", result["run"])
    assert md.returncode == 0, md.stderr
    for heading in ("## 1. Hypothesis", "## 2. Test configuration", "## 3. Observed behaviour",
                    "## 4. Delta from expected", "## 5. Remediation", "## 6. Re-test result"):
        assert heading in md.stdout, md.stdout
    assert "| producer-1 |" in md.stdout and "| max_lost | 0 |" in md.stdout
    audited = [e for e in kg.audit_entries() if e["type"] == "drill.recorded"]
    assert len(audited) == 1, audited
    details = audited[0]["details"]
    assert details["id"] == result["run"] and details["lost"] == data["lost"]
    assert len(details["sha256"]) == 64

    # Recording the same drill again is refused; a body that is not a drill result too.
    again = kg.http("POST", "/v1/drills", result)
    assert again.status == 409, again
    bad = kg.http("POST", "/v1/drills", {"run": "x y", "name": "n"})
    assert bad.status == 400 and "run" in bad.json["error"], bad


@pytest.mark.guard(180)
def test_drill_chaos_step_measures_recovery_after_the_fault(make_clusters, make_kgate, tmp_path):
    """A chaos step: every produce to the drill's topic is refused (NOT_LEADER_OR_FOLLOWER) for
    3 s through the chaos API; librdkafka retries, so nothing is lost or failed, and the RTO
    counts from the end of the fault. The rule is gone afterwards."""
    clusters = make_clusters(east="2.12", west="2.12")
    kg = make_kgate(clusters)
    rule = {"type": "broken-brokers", "topic": TOPIC, "rate": 100,
            "errors": {"produce": "NOT_LEADER_OR_FOLLOWER"}}
    path = write_drill(tmp_path, kg, steps=[{"action": "chaos", "rule": rule, "for": "3s"}],
                       workload={"producers": 1, "rate": 40, "consumers": 1},
                       expect={"max_lost": 0, "max_client_errors": 0})
    run = kg.cli("drill", "run", path, "--json", timeout=150)
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    result = json.loads(run.stdout)
    step = result["steps"][0]
    assert step["action"] == "chaos" and step["status"] == 200, step
    assert step["rule"] == rule and step["fault_ms"] >= 3000
    assert step["result"]["injected"] > 0, step["result"]
    assert all(c["rto_ms"][0] is not None for c in result["clients"]), result["clients"]
    data = result["data"]
    east = drill_records(clusters["east"], result["run"])
    assert data["lost"] == 0 and data["lost_without_switch"] == 0 and step["lost"] == 0
    assert len(east) == data["acked"] == data["found_on_active_side"], (len(east), data)
    assert kg.http("GET", "/v1/chaos/rules").json["rules"] == []
    assert kg.vcluster_status()["active"] == "east"
    md = kg.cli("drill", "report", result["run"]).stdout
    assert "RTO after chaos broken-brokers" in md and "faults injected" in md, md


def test_drill_file_errors_name_the_field(make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east="2.12", west="2.12")
    kg = make_kgate(clusters)
    cases = [({"steps": [{"action": "explode"}]}, 'steps[0].action'),
             ({"steps": []}, '"steps"'),
             ({"steps": [{"action": "chaos", "rule": {"type": "latency"}}]}, 'steps[0].for'),
             ({"steps": [{"action": "chaos", "for": "1s"}]}, 'steps[0].rule'),
             ({"steps": [{"action": "failover", "for": "1s"}]}, 'steps[0].rule'),
             ({"steps": [{"action": "failover", "planned": "yes"}]}, 'steps[0].planned'),
             ({"steps": [{"action": "failover", "planned": True, "force": True}]},
              'steps[0].planned'),
             ({"steps": [{"action": "chaos", "planned": True, "for": "1s",
                          "rule": {"type": "latency"}}]}, 'steps[0].planned'),
             ({"workload": {"producers": 0}}, 'workload.producers'),
             ({"between": "soon"}, '"between"'),
             ({"expect": {"max_lost": -1}}, 'expect.max_lost'),
             ({"colour": "red"}, '"colour"'),
             ({"workload": {"consumer_config": {"no.such.property": "1"}}},
              'workload.consumer_config.no.such.property')]
    for override, field in cases:
        r = kg.cli("drill", "run", write_drill(tmp_path, kg, **override))
        assert r.returncode == 2, (override, r.returncode, r.stderr)
        assert field in r.stderr, (override, r.stderr)
    r = kg.cli("drill", "run", write_drill(tmp_path, kg, vcluster="nope"))
    assert r.returncode == 1 and 'no virtual cluster "nope"' in r.stderr, r.stderr

    # Clients that never get through: the drill makes no switch and records nothing.
    dead = write_drill(tmp_path, kg, bootstrap="127.0.0.1:9", between="1s", consumer_wait="1s")
    r = kg.cli("drill", "run", dead, "--json", timeout=120)
    assert r.returncode == 1 and "no record was acknowledged" in r.stderr, r.stderr[-2000:]
    assert json.loads(r.stdout)["steps"] == []
    assert kg.vcluster_status()["active"] == "east"
    assert kg.http("GET", "/v1/drills").json == {"drills": []}
