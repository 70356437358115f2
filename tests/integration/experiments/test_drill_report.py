"""A drill that runs to its end against a real application, and the six-field report built from
what kgate measured.

The application: a confluent-kafka producer with default retries producing continuously to
app3, a consumer group member reading app3 and committing, and a "probe" producer that sends
one message at a time without retries to probe1, so that every fault injected on probe1 is an
error the probe's delivery reports show (one request, one message). The drill injects
broken-brokers at 30 % on both topics."""

import collections

import pytest
from confluent_kafka import KafkaError

from chaoslib import read_topic
from kghelpers import wait_for
from explib import (REPORT_SECTIONS, ConsumerApp, ProducerApp, assert_counted, audit_of,
                    base_drill, report_json, report_md, rule_ids, start_experiment, wait_ended,
                    wall)

RATE = 30
NER = {"produce": "NOT_ENOUGH_REPLICAS"}
COUNTS = ["requests", "produce_requests", "fetch_requests", "commit_requests", "produce_bytes",
          "fetch_bytes", "produce_results", "produce_errors", "fetch_results", "fetch_errors",
          "commit_results", "commit_errors", "connections_opened", "connections_closed",
          "faults_injected"]


def drill():
    return base_drill(
        "broker errors on app3 and probe1 at 30%",
        hypothesis="If 30% of produce requests fail with NOT_ENOUGH_REPLICAS, the producers "
                   "retry, consumers keep committing and no produce error reaches the client.",
        duration="6s", baseline="4s",
        rules=[{"type": "broken-brokers", "topic": "app3", "rate": RATE, "errors": NER},
               {"type": "broken-brokers", "topic": "probe1", "rate": RATE, "errors": NER}],
        expect={"max_produce_error_rate": 0, "max_fetch_error_rate": 0,
                "min_produce_throughput_ratio": 0.05, "max_commit_stall": "60s",
                "min_faults_injected": 1,
                "other": ["every message is delivered exactly once"]},
        abort={"client_error_rate_above": 95, "produce_throughput_below": 1, "window": "3s"})


def start_application(gate):
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-app", rate=100,
                      **{"enable.idempotence": False, "retry.backoff.ms": 20}).start()
    probe = ProducerApp(gate.bootstrap, "probe1", client_id="exp-probe", sync=True, pause=0.005, **{
        "message.send.max.retries": 0, "enable.idempotence": False, "acks": "all",
        "linger.ms": 0}).start()
    reader = ConsumerApp(gate.bootstrap, "app3", group="exp-readers").start()
    return app, probe, reader


def wait_application_flowing(app, probe, reader):
    """The baseline must see traffic of every kind: messages acknowledged, read and committed."""
    app.wait_acked(20)
    probe.wait_acked(5)
    wait_for(lambda: reader.consumed > 0 and reader.commits > 0, 60, 0.1,
             "the consumer group to read and commit")


def test_completed_drill_reports_real_measurements(gate, cluster):
    app, probe, reader = start_application(gate)
    try:
        wait_application_flowing(app, probe, reader)
        d = drill()
        created = start_experiment(gate, d)
        exp_id = created["id"]
        assert created["status"] == "pending" and created["vcluster"] == "default", created
        rec = wait_ended(gate, exp_id, timeout=90)
    finally:
        app.stop()
        probe.stop()
        reader.stop()

    assert rec["status"] == "completed", (rec["status"], rec["end_reason"], rec.get("abort"))
    assert rec["abort"] is None

    # The application's own view: retries absorbed every injected error on app3 ...
    assert app.errors() == [], [d.error for d in app.errors()[:5]]
    # ... the probe (no retries, one message per request) saw each injected fault as an error.
    probe_codes = [d.error.code() for d in probe.errors()]
    assert set(probe_codes) <= {KafkaError.NOT_ENOUGH_REPLICAS}, probe_codes[:5]

    rep = report_json(gate, exp_id)
    assert rep["experiment"] == exp_id and rep["name"] == d["name"]
    assert rep["status"] == "completed"
    for field in ("hypothesis", "test_configuration", "observed_behaviour",
                  "delta_from_expected", "remediation", "retest"):
        assert field in rep, f"report field {field} missing: {sorted(rep)}"

    # 1. Hypothesis
    assert rep["hypothesis"]["statement"] == d["hypothesis"]
    stated = rep["hypothesis"]["expectations"]
    assert len(stated) == 6, stated
    assert "every message is delivered exactly once" in stated

    # 2. Test configuration: the rules as injected, with their counters.
    conf = rep["test_configuration"]
    assert conf["vcluster"] == "default"
    assert conf["duration"] == "6s" and conf["baseline"] == "4s" and conf["abort_window"] == "3s"
    assert len(conf["abort_criteria"]) == 2, conf["abort_criteria"]
    for key in ("created_at", "created_by", "baseline_started_at", "injection_started_at",
                "ended_at"):
        assert conf[key], f"test_configuration.{key} is empty: {conf}"
    assert conf["injected_for_s"] > 0
    rules = {r["scope"]["topic"]: r for r in conf["rules"]}
    assert [r["id"] for r in conf["rules"]] == [f"{exp_id}-r1", f"{exp_id}-r2"], conf["rules"]
    for topic, r in rules.items():
        assert r["type"] == "broken-brokers" and r["rate"] == RATE, r
        assert r["scope"]["vcluster"] == "default", r
        assert r["parameters"]["errors"] == NER, r
        # At 30 %, over dozens of requests: some hit, some not.
        assert 0 < r["injected"] < r["matched"], r
    # The probe's rule: every fault it injected is an error the probe saw, and the probe saw no
    # other errors (one request, one message, no retries).
    assert rules["probe1"]["injected"] == len(probe_codes), (len(probe_codes), rules["probe1"])

    # 3. Observed behaviour: baseline against injection, from real traffic.
    obs = rep["observed_behaviour"]
    assert obs["status"] == "completed" and obs["abort"] is None
    base, during = obs["baseline"], obs["during"]
    for m, name in ((base, "baseline"), (during, "during")):
        for key in ("requests", "produce_requests", "produce_results", "produce_bytes",
                    "fetch_requests", "fetch_results", "fetch_bytes", "commit_requests",
                    "commit_results", "seconds", "requests_per_s", "produce_bytes_per_s",
                    "fetch_bytes_per_s", "commit_requests_per_s"):
            assert m[key] > 0, f"{name}.{key} is {m[key]}: {m}"
        assert m["produce_errors"] <= m["produce_results"], m
    assert base["produce_errors"] == 0 and base["faults_injected"] == 0, base
    assert during["produce_errors"] > 0 and during["faults_injected"] > 0, during
    # Against the clients' own counts. Every error the probe saw was answered during the
    # injection (the rules exist only then); the app's retried errors come on top.
    assert during["produce_errors"] >= len(probe_codes), (during, len(probe_codes))
    # The reader is the only client that commits, one synchronous commit at a time.
    started, ended = wall(conf["injection_started_at"]), wall(conf["ended_at"])
    assert_counted("during.commit_requests", during["commit_requests"], reader.commit_spans,
                   started, ended, rec["seen_at"])
    assert_counted("baseline.commit_requests", base["commit_requests"], reader.commit_spans,
                   wall(conf["baseline_started_at"]), started)
    assert during["commit_errors"] == len(reader.commit_errors) == 0, \
        (during, reader.commit_errors[:3])
    assert during["produce_error_pct"] == pytest.approx(
        100.0 * during["produce_errors"] / during["produce_results"], abs=0.01)
    # Faults: the report's total is the rules' counters; the measured stretch saw them.
    assert obs["faults_injected"] == sum(r["injected"] for r in conf["rules"]), obs
    assert 0 < during["faults_injected"] <= obs["faults_injected"], (during, obs)
    # Per-minute records: a 6 s injection is one (partial) minute, equal to the whole span.
    assert len(obs["minutes"]) == 1, obs["minutes"]
    minute = obs["minutes"][0]
    assert minute["minute"] == 1 and minute["start"] == conf["injection_started_at"], minute
    for key in COUNTS:
        assert minute[key] == during[key], (key, minute, during)
    assert obs["longest_commit_stall_s"] >= 0

    # 4. Delta from expected: each expectation judged from the observed numbers.
    delta = rep["delta_from_expected"]
    results = {e["expectation"]: e for e in delta["expectations"]}
    assert len(delta["expectations"]) == 6, delta
    produce_rate = 100.0 * during["produce_errors"] / during["produce_results"]
    e = results["max_produce_error_rate"]
    assert e["result"] == "fail", e  # errors did reach the client library (before retries)
    assert e["threshold"] == 0 and e["observed_value"] == pytest.approx(produce_rate), e
    fetch_rate = 100.0 * during["fetch_errors"] / during["fetch_results"]
    e = results["max_fetch_error_rate"]
    assert e["observed_value"] == pytest.approx(fetch_rate), e
    assert e["result"] == ("pass" if during["fetch_errors"] == 0 else "fail"), e
    ratio = (during["produce_bytes"] / during["seconds"]) / (base["produce_bytes"] / base["seconds"])
    e = results["min_produce_throughput_ratio"]
    assert e["observed_value"] == pytest.approx(ratio, rel=0.01), (e, ratio)
    assert e["result"] == ("pass" if e["observed_value"] >= 0.05 else "fail"), e
    e = results["max_commit_stall"]
    assert e["result"] == ("pass" if e["observed_value"] <= 60 else "fail"), e
    assert e["observed_value"] == pytest.approx(obs["longest_commit_stall_s"], abs=0.01), e
    e = results["min_faults_injected"]
    assert e["result"] == "pass" and e["observed_value"] >= 1, e
    e = results["other"]
    assert e["result"] == "not machine-checkable" and e["observed_value"] is None, e
    summary = delta["summary"]
    for verdict in ("pass", "fail", "no data", "not machine-checkable"):
        assert summary[verdict] == sum(1 for x in delta["expectations"]
                                       if x["result"] == verdict), (verdict, summary)
    assert summary["fail"] >= 1 and summary["pass"] >= 1 and summary["no data"] == 0, summary

    # 5, 6: nothing recorded yet.
    assert rep["remediation"]["text"] is None and rep["retest"]["experiment"] is None, rep

    # The record agrees with the report.
    assert rec["during"] == during and rec["baseline"] == base
    assert rec["expectations"] == delta["expectations"]

    # The rules are gone.
    assert not [i for i in rule_ids(gate) if i.startswith(exp_id)], gate.rules()

    # The hypothesis' "every message is delivered exactly once", checked by the test itself:
    # reject mode forwards nothing it fails, so the retries stored each message once; the probe
    # stored exactly what was acknowledged to it.
    acked = sorted(d.value for d in app.acked_ok())
    stored = read_topic(cluster.bootstrap, "app3", 3).values
    assert sorted(stored) == acked, collections.Counter(stored).most_common(3)
    assert read_topic(cluster.bootstrap, "probe1", 1).values == [d.value for d in probe.acked_ok()]

    # Markdown: the six sections, with the numbers.
    ctype, md = report_md(gate, exp_id)
    assert ctype.startswith("text/markdown"), ctype
    positions = [md.find(h) for h in REPORT_SECTIONS]
    assert all(p >= 0 for p in positions), [h for h in REPORT_SECTIONS if h not in md]
    assert positions == sorted(positions), "the sections are out of order"
    assert exp_id in md and d["hypothesis"] in md
    assert f"{during['produce_errors']} of {during['produce_results']}" in md, md

    # Audit: start and end, naming the experiment.
    starts = audit_of(gate, exp_id, "experiment.start")
    ends = audit_of(gate, exp_id, "experiment.end")
    assert len(starts) == 1 and len(ends) == 1, (starts, ends)
    assert starts[0]["details"]["vcluster"] == "default", starts[0]
    assert ends[0]["details"]["status"] == "completed", ends[0]
    assert ends[0]["details"]["faults_injected"] == obs["faults_injected"], ends[0]
    assert not audit_of(gate, exp_id, "experiment.abort")
    assert starts[0]["seq"] < ends[0]["seq"]


def test_final_fault_counts_match_what_the_client_saw(gate, cluster):
    """The report's count of injected faults is final: every fault a rule injected before the
    experiment removed it is in the record. The probe (no retries, one message per request)
    sees each injected fault as a delivery error, so its count is the truth.

    Fails with kgate at 642ad48: finish_run() reads the rules' counters
    (refresh_rule_counters) and only then removes the rules one by one (each removal writes
    the state store and the audit log); faults injected in between are lost from the record.
    The probe's rule is removed last here, after 15 others, so traffic is still being failed
    while the record is already closed."""
    idle = [{"type": "broken-brokers", "topic": "side3", "errors": NER} for _ in range(15)]
    probe = ProducerApp(gate.bootstrap, "probe1", client_id="exp-probe", sync=True, pause=0.005,
                        **{"message.send.max.retries": 0, "enable.idempotence": False,
                           "acks": "all", "linger.ms": 0}).start()
    try:
        probe.wait_acked(5)
        drill = base_drill("probe1 always fails", duration="3s", baseline="1s",
                           rules=idle + [{"type": "broken-brokers", "topic": "probe1",
                                          "errors": NER}])
        exp_id = start_experiment(gate, drill)["id"]
        rec = wait_ended(gate, exp_id, timeout=60)
        # Past the end: the probe is served again.
        probe.wait_acked(len(probe.acked_ok()) + 5, what="messages after the experiment")
    finally:
        probe.stop()
    assert rec["status"] == "completed", rec["end_reason"]
    codes = [d.error.code() for d in probe.errors()]
    assert set(codes) == {KafkaError.NOT_ENOUGH_REPLICAS}, codes[:5]
    rep = report_json(gate, exp_id)
    probe_rule = rep["test_configuration"]["rules"][-1]
    assert probe_rule["scope"]["topic"] == "probe1", probe_rule
    assert probe_rule["injected"] == len(codes), (
        f"the report says rule {probe_rule['id']} injected {probe_rule['injected']} faults; "
        f"the probe received {len(codes)} injected errors")
    obs = rep["observed_behaviour"]
    assert obs["faults_injected"] == len(codes)

    # The probe is the only client of the virtual cluster: the measured phases are its traffic.
    # Its errors all fall in the injection phase (the rules exist only then), exactly.
    base, during = obs["baseline"], obs["during"]
    assert during["produce_errors"] == during["faults_injected"] == len(codes), during
    assert base["produce_errors"] == base["faults_injected"] == 0, base
    # Its requests (one message each, one at a time) counted over each phase, against the
    # probe's own send and answer times.
    conf = rep["test_configuration"]
    spans = [d.span for d in probe.snapshot()]
    started, ended = wall(conf["injection_started_at"]), wall(conf["ended_at"])
    for key in ("produce_requests", "produce_results"):
        assert_counted(f"during.{key}", during[key], spans, started, ended, rec["seen_at"])
        assert_counted(f"baseline.{key}", base[key], spans, wall(conf["baseline_started_at"]),
                       started)
