"""`kgate experiment` as a CI gate: run a YAML drill, follow it to its end, exit 0 when it
completed with no failed expectation and 3 otherwise; list, status and report."""

import collections
import json

from chaoslib import read_topic
from explib import (REPORT_SECTIONS, ProducerApp, cli, get_experiment, report_json, report_md,
                    write_file)

DRILL = """\
# broker errors on app3, with a retrying producer
name: {name}
hypothesis: |
  If {rate}% of produce requests to app3 fail, the producer retries.
vcluster: default
duration: {duration}
baseline: 2s
rules:
  - type: broken-brokers
    topic: 'app3'
    rate: {rate}
    errors:
      produce: NOT_ENOUGH_REPLICAS
expect:
  max_produce_error_rate: {max_errors}
  min_faults_injected: 1
  other:
    - the producer's retries absorb the errors
{abort}"""


def drill_file(tmp_path, name, rate, max_errors, duration="3s", abort=""):
    text = DRILL.format(name=name, rate=rate, max_errors=max_errors, duration=duration,
                        abort=abort)
    return write_file(tmp_path, name.replace(" ", "-") + ".yaml", text)


def without_generated_at(text):
    return "\n".join(line for line in text.splitlines() if not line.startswith("Generated at"))


def split_run_output(cp):
    """`run --wait` prints the id, then the report."""
    first, _, rest = cp.stdout.partition("\n")
    assert first.startswith("x-"), cp.stdout[:500]
    return first.strip(), rest


def test_run_wait_exit_codes_and_report(gate, cluster, tmp_path):
    app = ProducerApp(gate.bootstrap, "app3", client_id="exp-app", rate=100, **{
        "enable.idempotence": False, "retry.backoff.ms": 20,
        "message.timeout.ms": 120000}).start()
    try:
        app.wait_acked(20)

        # Completed, every expectation met: exit 0, the Markdown report on stdout.
        cp = cli(gate, "run", drill_file(tmp_path, "passing drill", 20, 100), "--wait")
        assert cp.returncode == 0, (cp.returncode, cp.stdout[-3000:], cp.stderr[-2000:])
        passed_id, md = split_run_output(cp)
        rec = get_experiment(gate, passed_id)
        assert rec["status"] == "completed", rec["end_reason"]
        assert rec["rules"][0]["injected"] > 0, rec["rules"]
        for heading in REPORT_SECTIONS:
            assert heading in md, (heading, md[:2000])
        assert "Status: **completed**" in md, md[:500]
        assert "If 20% of produce requests to app3 fail" in md
        assert cp.stderr.strip(), "no progress on stderr"

        # Completed, but an expectation failed: exit 3.
        cp = cli(gate, "run", drill_file(tmp_path, "failing drill", 100, 0, duration="2s"),
                 "--wait")
        assert cp.returncode == 3, (cp.returncode, cp.stdout[-3000:], cp.stderr[-2000:])
        failed_id, md = split_run_output(cp)
        rec = get_experiment(gate, failed_id)
        assert rec["status"] == "completed", rec["end_reason"]
        verdicts = {e["expectation"]: e["result"] for e in rec["expectations"]}
        assert verdicts["max_produce_error_rate"] == "fail", rec["expectations"]
        assert "| max_produce_error_rate |" in md and "| **fail** |" in md, md

        # Aborted: exit 3.
        abort = "abort:\n  client_error_rate_above: 50\n  window: 2s\n"
        cp = cli(gate, "run", drill_file(tmp_path, "aborting drill", 100, 100, duration="10m",
                                         abort=abort), "--wait")
        assert cp.returncode == 3, (cp.returncode, cp.stdout[-3000:], cp.stderr[-2000:])
        aborted_id, md = split_run_output(cp)
        rec = get_experiment(gate, aborted_id)
        assert rec["status"] == "aborted", (rec["status"], rec["end_reason"])
        assert rec["abort"]["criterion"] == "client_error_rate_above", rec["abort"]
        assert "Status: **aborted**" in md and "abort.client_error_rate_above" in md, md[:800]

        # Producing goes on once the aborted drill's rule is gone.
        app.wait_acked(len(app.acked_ok()) + 20, what="messages after the last drill")
    finally:
        app.stop()
    assert app.errors() == [], [d.error for d in app.errors()[:5]]
    # What the drills' hypothesis claims, checked from the stored topic: the retries stored
    # every acknowledged message once (the rules failed requests without forwarding them).
    stored = read_topic(cluster.bootstrap, "app3", 3).values
    assert sorted(stored) == sorted(d.value for d in app.acked_ok()), \
        collections.Counter(stored).most_common(3)

    # report: the API's report, rendered by the CLI.
    for exp_id in (passed_id, failed_id, aborted_id):
        cp = cli(gate, "report", exp_id, "--format", "md", check=True)
        _, api_md = report_md(gate, exp_id)
        assert without_generated_at(cp.stdout).strip() == without_generated_at(api_md).strip(), \
            (cp.stdout[:1500], api_md[:1500])
        cp = cli(gate, "report", exp_id, "--format", "json", check=True)
        printed = json.loads(cp.stdout)
        api = report_json(gate, exp_id)
        printed.pop("generated_at")
        api.pop("generated_at")
        assert printed == api

    # list and status.
    cp = cli(gate, "list", check=True)
    for exp_id, status in ((passed_id, "completed"), (failed_id, "completed"),
                           (aborted_id, "aborted")):
        [line] = [l for l in cp.stdout.splitlines() if l.startswith(exp_id)]
        assert status in line, line
    cp = cli(gate, "list", "--json", check=True)
    assert [e["id"] for e in json.loads(cp.stdout)["experiments"]] == \
        [passed_id, failed_id, aborted_id]
    cp = cli(gate, "status", aborted_id, check=True)
    assert aborted_id in cp.stdout and "aborted" in cp.stdout, cp.stdout


def test_run_without_wait_prints_the_id_and_stop_ends_it(gate, cluster, tmp_path):
    cp = cli(gate, "run", drill_file(tmp_path, "long drill", 10, 100, duration="10m"),
             check=True)
    exp_id = cp.stdout.strip()
    assert exp_id.startswith("x-") and "\n" not in exp_id, cp.stdout
    assert get_experiment(gate, exp_id)["status"] in ("pending", "baseline", "running")
    cli(gate, "stop", exp_id, check=True)
    rec = get_experiment(gate, exp_id)
    assert rec["status"] == "stopped", rec
    assert gate.rules() == []
    cp = cli(gate, "stop", exp_id)
    assert cp.returncode == 1 and "already ended" in cp.stderr, (cp.returncode, cp.stderr)


def test_cli_refuses_bad_drill_files(gate, tmp_path):
    bad = write_file(tmp_path, "bad.yaml", DRILL.format(
        name="bad", rate=10, max_errors=5, duration="3 fortnights", abort=""))
    cp = cli(gate, "run", bad)
    assert cp.returncode == 1 and 'field "duration"' in cp.stderr, (cp.returncode, cp.stderr)
    broken = write_file(tmp_path, "broken.yaml", "name: [unclosed\n")
    cp = cli(gate, "run", broken)
    assert cp.returncode == 1 and cp.stderr.strip(), (cp.returncode, cp.stderr)
    cp = cli(gate, "run", str(tmp_path / "missing.yaml"))
    assert cp.returncode == 1 and "missing.yaml" in cp.stderr, (cp.returncode, cp.stderr)
    cp = cli(gate, "run")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    cp = cli(gate, "report", "x-nope")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert gate.request("GET", "/v1/experiments")[1]["experiments"] == []
