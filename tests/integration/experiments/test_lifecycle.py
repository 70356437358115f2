"""Stop, annotate (remediation and re-test), and what the experiment API refuses."""

from confluent_kafka import KafkaError

from explib import (REPORT_SECTIONS, ProducerApp, audit_entries, audit_of, base_drill, cli,
                    get_experiment, report_json, report_md, rule_ids, start_experiment,
                    wait_ended, wait_status)
from kghelpers import wait_for

NER = {"produce": "NOT_ENOUGH_REPLICAS"}


def strict_probe(gate, topic="probe1", client_id="exp-probe", pause=0.01):
    """One message at a time, no retries: every injected fault is a delivery error."""
    return ProducerApp(gate.bootstrap, topic, client_id=client_id, sync=True, pause=pause, **{
        "message.send.max.retries": 0, "enable.idempotence": False, "acks": "all",
        "linger.ms": 0}).start()


def quiet_drill(name, **fields):
    """A short drill whose rule targets a topic nobody uses."""
    fields.setdefault("duration", "1s")
    fields.setdefault("baseline", "1s")
    fields.setdefault("rules", [{"type": "broken-brokers", "topic": "side3", "errors": NER}])
    return base_drill(name, **fields)


# ---------------------------------------------------------------------------------------------
# stop


def test_stop_ends_a_running_experiment_and_removes_its_rules(gate, cluster):
    probe = strict_probe(gate)
    try:
        probe.wait_acked(5)
        drill = base_drill("probe1 fails until stopped", duration="10m", baseline="1s",
                           rules=[{"type": "broken-brokers", "topic": "probe1", "errors": NER},
                                  {"type": "latency", "topic": "side3", "delay_ms": 10}])
        exp_id = start_experiment(gate, drill)["id"]
        wait_status(gate, exp_id, ("running",), timeout=30)
        wait_for(lambda: len(probe.errors()) >= 3, 30, 0.05, "the probe to see injected errors")
        assert sorted(i for i in rule_ids(gate) if i.startswith(exp_id)) == \
            [f"{exp_id}-r1", f"{exp_id}-r2"], gate.rules()

        # While it runs: live measurements, second by second.
        def live_view():
            live = get_experiment(gate, exp_id, seconds=5)["live"]
            return live if live["during_so_far"]["faults_injected"] > 0 else None

        live = wait_for(live_view, 30, 0.2, "a measured second with injected faults")
        assert live["phase"] == "running", live
        assert 0 < len(live["recent_seconds"]) <= 5, live["recent_seconds"]
        assert live["during_so_far"]["produce_errors"] > 0, live
        # Annotations wait until it has ended.
        status, body = gate.request("PATCH", f"/v1/experiments/{exp_id}",
                                    {"remediation": "too early"})
        assert status == 409, (status, body)

        status, body = gate.request("POST", f"/v1/experiments/{exp_id}/stop")
        assert status == 200, (status, body)
        assert body["status"] == "stopped", body
        assert body["stopped_by"] and "127.0.0.1" in body["stopped_by"], body
        assert body["end_reason"].startswith("stopped by"), body["end_reason"]
        assert "live" not in get_experiment(gate, exp_id)

        # The rules are gone at once, and the probe's messages go through again.
        assert not [i for i in rule_ids(gate) if i.startswith(exp_id)], gate.rules()
        errors_at_stop = len(probe.errors())
        ok_at_stop = len(probe.acked_ok())
        probe.wait_acked(ok_at_stop + 20, what="messages after the stop")
        assert len(probe.errors()) == errors_at_stop, "errors after the rules were removed"
    finally:
        probe.stop()
    assert {d.error.code() for d in probe.errors()} == {KafkaError.NOT_ENOUGH_REPLICAS}

    rec = get_experiment(gate, exp_id)
    assert rec["status"] == "stopped" and rec["ended_at"], rec
    # The probe is the only client: every error it saw was injected while the rules stood,
    # which is the measured injection phase up to the stop.
    seen = len(probe.errors())
    assert rec["during"]["faults_injected"] == rec["during"]["produce_errors"] == seen, \
        (rec["during"], seen)
    rep = report_json(gate, exp_id)
    assert rep["status"] == "stopped"
    assert rep["observed_behaviour"]["faults_injected"] > 0

    # Stopping again, or something unknown.
    status, body = gate.request("POST", f"/v1/experiments/{exp_id}/stop")
    assert status == 409 and "already ended" in body["error"], (status, body)
    status, body = gate.request("POST", "/v1/experiments/x-nope/stop")
    assert status == 404, (status, body)

    ends = audit_of(gate, exp_id, "experiment.end")
    assert len(ends) == 1 and ends[0]["details"]["status"] == "stopped", ends
    assert "127.0.0.1" in ends[0]["details"]["actor"], ends[0]
    removed = [e for e in audit_entries(gate) if e["type"] == "chaos.rule.remove"
               and e["details"]["id"].startswith(exp_id)]
    assert len(removed) == 2 and all(exp_id in e["details"]["actor"] for e in removed), removed


def test_stop_report_counts_everything_up_to_the_stop(gate, cluster):
    """A stopped experiment's measurements run up to the stop: the injection phase's faults
    (section 3's "during", and what the expectations are judged on) are the faults its rules
    injected.

    Fails with kgate at 642ad48: kg_experiments_stop ends the run with the observation of the
    last one-second tick (finish_run uses r->last), while the rules' counters are read at the
    stop; whatever happened since the last tick (here: the probe's errors) is missing from
    "during", "minutes" and ended_at. Stopped within its first second of injection, the report
    says 0 faults were injected during the run (min_faults_injected: fail) next to the rules'
    true count."""
    probe = strict_probe(gate, pause=0.002)
    try:
        probe.wait_acked(5)
        drill = base_drill("probe1 fails until stopped", duration="10m", baseline="1s",
                           rules=[{"type": "broken-brokers", "topic": "probe1", "errors": NER}],
                           expect={"min_faults_injected": 1})
        exp_id = start_experiment(gate, drill)["id"]
        wait_status(gate, exp_id, ("running",), timeout=30)
        wait_for(lambda: len(probe.errors()) >= 20, 30, 0.05, "the probe to see injected errors")
        status, body = gate.request("POST", f"/v1/experiments/{exp_id}/stop")
        assert status == 200, (status, body)
    finally:
        probe.stop()
    rep = report_json(gate, exp_id)
    obs = rep["observed_behaviour"]
    [verdict] = rep["delta_from_expected"]["expectations"]
    summary = (f"during.faults_injected {obs['during']['faults_injected']}, rules injected "
               f"{obs['faults_injected']}, the probe saw {len(probe.errors())} errors; "
               f"min_faults_injected: {verdict['result']} ({verdict['detail']})")
    assert obs["faults_injected"] > 0, summary
    assert verdict["result"] == "pass", summary
    # What the probe (the only client, no retries) saw is the truth for every figure.
    assert obs["during"]["faults_injected"] == obs["faults_injected"] == len(probe.errors()), \
        summary
    assert obs["during"]["produce_errors"] == len(probe.errors()), summary


# ---------------------------------------------------------------------------------------------
# annotate


def run_to_end(gate, name):
    exp_id = start_experiment(gate, quiet_drill(name))["id"]
    rec = wait_ended(gate, exp_id, timeout=60)
    assert rec["status"] == "completed", (rec["status"], rec["end_reason"])
    return rec


def test_annotate_remediation_and_retest_show_in_the_report(gate, cluster, tmp_path):
    first = run_to_end(gate, "first drill")
    second = run_to_end(gate, "second drill")
    a, b = first["id"], second["id"]

    patch = {"remediation": "raised delivery.timeout.ms and added an error handler",
             "retest": {"experiment": b, "result": "no errors reached the application"}}
    status, body = gate.request("PATCH", f"/v1/experiments/{a}", patch)
    assert status == 200, (status, body)
    assert body["remediation"] == patch["remediation"] and body["retest"] == patch["retest"]
    assert body["annotated_at"] and body["annotated_by"], body

    rep = report_json(gate, a)
    assert rep["remediation"]["text"] == patch["remediation"], rep["remediation"]
    assert rep["remediation"]["annotated_at"] and rep["remediation"]["annotated_by"]
    rt = rep["retest"]
    assert rt["experiment"] == b and rt["result"] == patch["retest"]["result"], rt
    linked = rt["linked"]
    assert linked["experiment"] == b and linked["name"] == "second drill", linked
    assert linked["status"] == "completed" and linked["ended_at"] == second["ended_at"], linked
    _, md = report_md(gate, a)
    fifth, sixth = md.index(REPORT_SECTIONS[4]), md.index(REPORT_SECTIONS[5])
    assert patch["remediation"] in md[fifth:sixth], md[fifth:]
    assert b in md[sixth:] and patch["retest"]["result"] in md[sixth:], md[sixth:]

    # A retest given in parts keeps the other part.
    status, body = gate.request("PATCH", f"/v1/experiments/{a}",
                                {"retest": {"result": "confirmed twice"}})
    assert status == 200, (status, body)
    assert body["retest"] == {"experiment": b, "result": "confirmed twice"}, body["retest"]
    assert body["remediation"] == patch["remediation"]

    # Refusals name the field.
    for bad, field in (({"retest": {"experiment": a}}, "retest.experiment"),
                       ({"retest": {"experiment": "x-nope"}}, "retest.experiment"),
                       ({"remediation": 5}, "remediation"),
                       ({"colour": "red"}, "colour")):
        status, body = gate.request("PATCH", f"/v1/experiments/{a}", bad)
        assert status == 400 and field in body["error"], (bad, status, body)
    # The re-test must be a later experiment.
    status, body = gate.request("PATCH", f"/v1/experiments/{b}", {"retest": {"experiment": a}})
    assert status == 400 and "after" in body["error"], (status, body)
    status, body = gate.request("PATCH", "/v1/experiments/x-nope", {"remediation": "x"})
    assert status == 404, (status, body)

    annotations = audit_of(gate, a, "experiment.annotate")
    assert len(annotations) == 2, annotations
    assert annotations[0]["details"]["remediation"] == patch["remediation"], annotations[0]

    # The CLI does the same: annotate the second with a third.
    third = run_to_end(gate, "third drill")
    c = third["id"]
    cp = cli(gate, "annotate", b, "--remediation", "nothing to fix", "--retest", c,
             "--retest-result", "still fine", check=True)
    rep = report_json(gate, b)
    assert rep["remediation"]["text"] == "nothing to fix", (rep["remediation"], cp.stdout)
    assert rep["retest"]["experiment"] == c and rep["retest"]["result"] == "still fine", \
        rep["retest"]
    assert rep["retest"]["linked"]["name"] == "third drill", rep["retest"]
    cp = cli(gate, "report", b, "--format", "md", check=True)
    assert "nothing to fix" in cp.stdout and c in cp.stdout, cp.stdout[-2000:]
    # The CLI's refusals come back as the API's message, exit code 1.
    cp = cli(gate, "annotate", c, "--retest", a)
    assert cp.returncode == 1 and "retest.experiment" in cp.stderr, (cp.returncode, cp.stderr)


# ---------------------------------------------------------------------------------------------
# validation


def test_bad_drills_are_refused_naming_the_field(gate_factory):
    gate = gate_factory(vclusters=("default", "other"))
    rule = {"type": "broken-brokers", "topic": "side3", "errors": NER}
    cases = [
        (dict(quiet_drill("x"), colour="blue"), 'unknown field "colour"'),
        (quiet_drill("x", duration="5 parsecs"), 'field "duration"'),
        (quiet_drill("x", duration="48h"), 'field "duration"'),
        (quiet_drill("x", baseline="0s"), 'field "baseline"'),
        ({k: v for k, v in quiet_drill("x").items() if k != "hypothesis"}, 'field "hypothesis"'),
        (quiet_drill("x", rules=[]), 'field "rules"'),
        (quiet_drill("x", rules=[dict(rule, type="meteor-strike")]), "rules[0]"),
        (quiet_drill("x", rules=[rule, dict(rule, rate=300)]), "rules[1]"),
        (quiet_drill("x", rules=[dict(rule, vcluster="other")]), "rules[0].vcluster"),
        (quiet_drill("x", rules=[dict(rule, id="mine")]), "rules[0].id"),
        (quiet_drill("x", vcluster="nowhere"), 'field "vcluster"'),
        (quiet_drill("x", expect={"max_latency": 5}), "expect.max_latency"),
        (quiet_drill("x", expect={"min_produce_throughput_ratio": 80}),
         "expect.min_produce_throughput_ratio"),
        (quiet_drill("x", abort={"client_error_rate_above": 150}),
         "abort.client_error_rate_above"),
        (quiet_drill("x", abort={"window": "soon"}), "abort.window"),
    ]
    for drill, named in cases:
        status, body = gate.request("POST", "/v1/experiments", drill)
        assert status == 400, (drill, status, body)
        assert named in body["error"], (named, body)
    status, body = gate.request("POST", "/v1/experiments", b"{not json")
    assert status == 400 and body.get("error"), (status, body)
    unknown_type = gate.request("POST", "/v1/experiments",
                                quiet_drill("x", rules=[dict(rule, type="meteor-strike")]))[1]
    assert 'field "type"' in unknown_type["error"], unknown_type
    # Nothing was started by a refused drill.
    assert gate.request("GET", "/v1/experiments")[1]["experiments"] == []
    assert not [e for e in audit_entries(gate) if e["type"].startswith("experiment.")]
    assert gate.rules() == []

    # One active experiment per virtual cluster; another virtual cluster runs side by side.
    long = quiet_drill("long", duration="10m")
    first = start_experiment(gate, long)["id"]
    status, body = gate.request("POST", "/v1/experiments", long)
    assert status == 409 and first in body["error"], (status, body)
    beside = start_experiment(gate, dict(long, vcluster="other"))["id"]
    wait_status(gate, first, ("running",), timeout=30)
    wait_status(gate, beside, ("running",), timeout=30)
    assert sorted(r["vcluster"] for r in gate.rules()) == ["default", "other"], gate.rules()
    listed = {e["id"]: e for e in gate.request("GET", "/v1/experiments")[1]["experiments"]}
    assert set(listed) == {first, beside}, listed
    assert listed[first]["status"] == "running" and listed[first]["expectations"] is None
    for exp_id in (first, beside):
        status, body = gate.request("POST", f"/v1/experiments/{exp_id}/stop")
        assert status == 200 and body["status"] == "stopped", (status, body)
    assert gate.rules() == []
    # Once it has ended, the virtual cluster takes a new experiment.
    again = start_experiment(gate, quiet_drill("again"))["id"]
    assert wait_ended(gate, again)["status"] == "completed"

    for path in ("/v1/experiments/x-nope", "/v1/experiments/x-nope/report"):
        status, body = gate.request("GET", path)
        assert status == 404, (path, status, body)
