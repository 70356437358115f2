"""Abort criteria: a run whose criterion trips stops itself, says why (criterion, limit and what
kgate observed over the window), removes its rules, and the application recovers."""

import time

import pytest

from explib import (ConsumerApp, ProducerApp, assert_counted, audit_of, base_drill,
                    count_in_window, report_json, report_md, rule_ids, start_experiment,
                    wait_ended, wall)
from kghelpers import wait_for


def assert_rules_gone(gate, exp_id, rec):
    listed = rule_ids(gate)
    assert not [i for i in listed if i.startswith(exp_id)], listed
    for r in rec["rules"]:
        assert gate.rule(r["id"]) is None, r["id"]


def assert_abort_recorded(gate, exp_id, rec, criterion):
    assert rec["status"] == "aborted", (rec["status"], rec["end_reason"])
    ab = rec["abort"]
    assert ab and ab["criterion"] == criterion, ab
    # The reason names the criterion, the observed value and the limit.
    assert f"abort.{criterion}" in rec["end_reason"], rec["end_reason"]
    assert ab["observed_text"] in rec["end_reason"], (ab, rec["end_reason"])
    assert ab["at"] and ab["detail"] and ab["window_s"] > 0, ab
    rep = report_json(gate, exp_id)
    assert rep["status"] == "aborted"
    assert rep["observed_behaviour"]["abort"] == ab
    assert rep["observed_behaviour"]["end_reason"] == rec["end_reason"]
    _, md = report_md(gate, exp_id)
    assert "aborted" in md and rec["end_reason"] in md, md[:1500]
    aborts = audit_of(gate, exp_id, "experiment.abort")
    assert len(aborts) == 1 and aborts[0]["details"]["criterion"] == criterion, aborts
    ends = audit_of(gate, exp_id, "experiment.end")
    assert len(ends) == 1 and ends[0]["details"]["status"] == "aborted", ends
    assert audit_of(gate, exp_id, "experiment.start")


def test_error_rate_abort_stops_the_run_and_the_producer_recovers(gate, cluster):
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-app", rate=100, **{
        "enable.idempotence": False, "retry.backoff.ms": 50,
        "message.timeout.ms": 120000}).start()
    try:
        app.wait_acked(20)
        drill = base_drill(
            "every produce fails", duration="10m", baseline="3s",
            rules=[{"type": "broken-brokers", "topic": "app3", "rate": 100,
                    "errors": {"produce": "NOT_ENOUGH_REPLICAS"}}],
            expect={"max_produce_error_rate": 10},
            abort={"client_error_rate_above": 50, "window": "2s"})
        exp_id = start_experiment(gate, drill)["id"]
        rec = wait_ended(gate, exp_id, timeout=90)
        aborted_seen = time.monotonic()
        assert_abort_recorded(gate, exp_id, rec, "client_error_rate_above")
        assert_rules_gone(gate, exp_id, rec)

        # What tripped it, as measured over the window.
        ab = rec["abort"]
        w = ab["window"]
        results = w["produce_results"] + w["fetch_results"]
        assert results > 0 and w["produce_errors"] > 0, w
        assert ab["threshold"] == 50
        assert ab["observed"] == pytest.approx(
            100.0 * (w["produce_errors"] + w["fetch_errors"]) / results), ab
        assert ab["observed"] > 50, ab
        assert rec["during"]["produce_errors"] > 0 and rec["during"]["faults_injected"] > 0
        assert rec["rules"][0]["injected"] > 0, rec["rules"]
        # Expectations are judged over the injection phase, also when aborted.
        [e] = rec["expectations"]
        assert e["expectation"] == "max_produce_error_rate" and e["result"] == "fail", e

        # The producer recovers: messages sent after the abort are acknowledged ...
        app.wait_acked(20, sent_after=aborted_seen, what="messages sent after the abort")
    finally:
        app.stop()
    # ... and its retries carried every message through (none failed for the application).
    assert app.errors() == [], [d.error for d in app.errors()[:5]]
    assert all(d.acked is not None for d in app.snapshot())


def test_produce_throughput_abort_on_a_slowed_producer(gate, cluster):
    """A latency rule on Produce holds every request of an application that sends
    synchronously: its throughput collapses and produce_throughput_below trips."""
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-sync", sync=True, pause=0.002, **{
        "linger.ms": 0, "message.timeout.ms": 120000, "socket.timeout.ms": 60000}).start()
    try:
        app.wait_acked(50)
        drill = base_drill(
            "produce held for 2.5 s", duration="10m", baseline="3s",
            rules=[{"type": "latency", "client_id": "exp-sync", "api": ["Produce"],
                    "delay_ms": 2500}],
            abort={"produce_throughput_below": 50, "client_error_rate_above": 50,
                   "window": "3s"})
        exp_id = start_experiment(gate, drill)["id"]
        rec = wait_ended(gate, exp_id, timeout=90)
        aborted_seen = time.monotonic()
        assert_abort_recorded(gate, exp_id, rec, "produce_throughput_below")
        assert_rules_gone(gate, exp_id, rec)

        ab = rec["abort"]
        base = rec["baseline"]
        w = ab["window"]
        assert base["produce_bytes_per_s"] > 0, base
        assert ab["threshold"] == 50
        assert ab["observed"] == pytest.approx(
            100.0 * (w["produce_bytes"] / w["seconds"]) / (base["produce_bytes"] / base["seconds"]),
            rel=0.01), (ab, base)
        assert ab["observed"] < 50, ab
        # No errors were involved: the client error criterion had nothing to trip on.
        assert w["produce_errors"] == 0, w
        assert rec["rules"][0]["injected"] > 0, rec["rules"]
        # The synchronous app is the only client: kgate's request counts over the baseline and
        # over the abort window are the app's own, one message per request.
        spans = [d.span for d in app.snapshot()]
        assert_counted("baseline.produce_requests", base["produce_requests"], spans,
                       wall(rec["baseline_started_at"]), wall(rec["injection_started_at"]))
        assert_counted("abort window produce_requests", w["produce_requests"], spans,
                       wall(ab["at"]) - w["seconds"], wall(ab["at"]))

        app.wait_acked(20, sent_after=aborted_seen, what="messages sent after the abort")
    finally:
        app.stop()
    assert app.errors() == [], [d.error for d in app.errors()[:5]]


def test_commit_stall_abort_when_the_consumer_group_falls_behind(gate, cluster):
    """Fetch errors starve the consumer group while the producer keeps producing: the group
    stops committing (it falls behind) and group_commit_stalled_for trips."""
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-app", rate=100, **{
        "enable.idempotence": False}).start()
    reader = ConsumerApp(gate.bootstrap, "app3", group="exp-readers").start()
    try:
        app.wait_acked(20)
        wait_for(lambda: reader.commits >= 3, 60, 0.1, "the consumer group to commit")
        drill = base_drill(
            "consumers cannot fetch", duration="10m", baseline="3s",
            rules=[{"type": "broken-brokers", "topic": "app3", "rate": 100,
                    "errors": {"fetch": "NOT_LEADER_OR_FOLLOWER"}}],
            abort={"group_commit_stalled_for": "3s", "window": "2s"})
        exp_id = start_experiment(gate, drill)["id"]
        rec = wait_ended(gate, exp_id, timeout=90)
        assert_abort_recorded(gate, exp_id, rec, "group_commit_stalled_for")
        assert_rules_gone(gate, exp_id, rec)
        ab = rec["abort"]
        assert ab["observed"] >= ab["threshold"], ab
        assert rec["baseline"]["commit_requests"] > 0, rec["baseline"]
        # Producers kept producing; the consumers were failed.
        assert ab["window"]["produce_requests"] > 0 and ab["window"]["commit_requests"] == 0, ab
        assert rec["during"]["fetch_errors"] > 0 and rec["during"]["produce_errors"] == 0, \
            rec["during"]
        # The reader (the only client that commits, synchronously) agrees: it completed no
        # commit and read no record within the window kgate judged; before, it committed as
        # often as kgate counted.
        start, end = wall(ab["at"]) - ab["window"]["seconds"], wall(ab["at"])
        assert count_in_window(reader.commit_spans, start, end)[0] == 0, reader.commit_spans[-5:]
        assert not [t for t in reader.read_at if start <= t <= end], "records read in the window"
        assert_counted("baseline.commit_requests", rec["baseline"]["commit_requests"],
                       reader.commit_spans, wall(rec["baseline_started_at"]),
                       wall(rec["injection_started_at"]))

        # The group catches up and commits again once the rule is gone.
        commits = reader.commits
        consumed = reader.consumed
        wait_for(lambda: reader.commits > commits + 2 and reader.consumed > consumed, 60, 0.1,
                 "the consumer group to commit again")
    finally:
        app.stop()
        reader.stop()
    assert reader.commit_errors == [], reader.commit_errors[:5]


@pytest.mark.parametrize("rule", [
    {"type": "timeout", "direction": "upstream"},
    {"type": "bandwidth", "kib_per_s": 1, "direction": "upstream"},
], ids=["timeout", "bandwidth"])
def test_tcp_fault_slows_a_connected_producer_below_its_baseline(gate, cluster, rule):
    """TCP faults, as Toxiproxy has them, act on the connections an application already has:
    an experiment injects into running traffic, it does not wait for clients to reconnect.
    `timeout` stops the producer's requests, `bandwidth` at 1 KiB/s starves them: the
    throughput criterion trips.

    Fails with kgate at 642ad48: TCP faults are decided when a connection is accepted and at its
    first request only, so the rule matches none of the producer's connections (matched 0,
    injected 0) and the drill completes as if nothing had been injected."""
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-sync", sync=True, pause=0.002, **{
        "linger.ms": 0, "message.timeout.ms": 120000}).start()
    try:
        app.wait_acked(50)
        drill = base_drill(
            f"{rule['type']} on the producer's connections", duration="6s", baseline="3s",
            rules=[dict(rule, client_id="exp-sync")],
            abort={"produce_throughput_below": 50, "window": "3s"})
        exp_id = start_experiment(gate, drill)["id"]
        rec = wait_ended(gate, exp_id, timeout=90)
    finally:
        app.stop()
    counters = [(r["id"], r.get("matched"), r.get("injected")) for r in rec["rules"]]
    assert rec["status"] == "aborted", (
        f"status {rec['status']} ({rec['end_reason']}); rule (id, matched, injected): "
        f"{counters}; produce B/s baseline {rec['baseline']['produce_bytes_per_s']}, during "
        f"{rec['during']['produce_bytes_per_s']}")
    assert rec["abort"]["criterion"] == "produce_throughput_below", rec["abort"]
    assert rec["abort"]["observed"] < 50, rec["abort"]
    assert rec["rules"][0]["injected"] > 0, counters
    assert_rules_gone(gate, exp_id, rec)
