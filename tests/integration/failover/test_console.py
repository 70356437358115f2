"""The web console (/ui/, docs/console.md) in a real browser: Debian's Chromium driven by
playwright-core (node/console_ui.cjs), against a kgate in front of two dev clusters while a
confluent-kafka producer and consumer run through it.

The operator signs in with a token, sees the overview, fails over and back with the button
(confirmation naming the target, parity pre-flight, reason; the timeline shows the first request
on the new side), sees the charts fill, adds and removes a chaos rule, and finds the switches in
the audit log with the chain intact, runs a drill, watches it run, stops it and reads its
report. An admin adds and removes a user and an ACL binding. A viewer sees the same pages without the buttons, and the
API answers its failover with 403. Screenshots of every page (desktop and phone) are kept in
build/test-artifacts/ui/ and listed in the test log."""

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from fohelpers import ClientRun, print_flush
from kghelpers import INTEGRATION_DIR, admin_http, wait_for

CHROMIUM = "/usr/bin/chromium"
SCRIPT = os.path.join(INTEGRATION_DIR, "node", "console_ui.cjs")
SHOTS = os.path.join(os.path.dirname(os.path.dirname(INTEGRATION_DIR)), "build", "test-artifacts",
                     "ui")
BOOTSTRAP_TOKEN = "console-test-bootstrap-token-0123456789"


def add_token(kg, name, role):
    r = kg.http("POST", "/v1/tokens", {"name": name, "role": role})
    assert r.status == 201, r
    return r.json["token"]


def record_drill(kg, tmp_path, operator):
    """A short real drill (kgate's own producer through the vcluster, a 1 s chaos step), run
    with `kgate drill run` as the operator and recorded by it: its name, as the console must
    list it."""
    name = "console drill check"
    path = tmp_path / "drill.json"
    path.write_text(json.dumps({
        "name": name, "hypothesis": "a 1 s latency fault costs no producer error",
        "vcluster": "default", "bootstrap": kg.bootstrap("default"), "topic": "fo-drill",
        "workload": {"producers": 1, "rate": 20, "consumers": 0}, "between": "1s",
        "steps": [{"action": "chaos", "for": "1s",
                   "rule": {"type": "latency", "delay_ms": 5, "topic": "fo-drill"}}],
        "expect": {"max_client_errors": 0}}))
    run = kg.cli("drill", "run", str(path), "--json", timeout=120,
                 env=dict(os.environ, KGATE_ADMIN_TOKEN=operator))
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    assert json.loads(run.stdout)["name"] == name
    return name


def run_console(spec, run, timeout=420):
    """Runs the browser script while checking that the clients stay healthy; returns its events
    {step: event}."""
    proc = subprocess.Popen(["node", SCRIPT, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=INTEGRATION_DIR)
    out = {}
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if run:
            run.check_healthy()
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("the console script did not finish:\n" + "".join(lines))
        time.sleep(0.5)
    reader.join(10)
    err = proc.stderr.read()
    for line in lines:
        ev = json.loads(line)
        print_flush("console:", line.rstrip())
        if ev["step"] in ("pageerror", "console"):
            out.setdefault(ev["step"], []).append(ev)
        else:
            out[ev["step"]] = ev
    assert proc.returncode == 0, f"console script failed: {out.get('error')}\n{err[-3000:]}"
    return out


@pytest.mark.guard(600)
def test_console_operator_and_viewer(make_clusters, make_kgate, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: scripts/install-deps installs Debian's chromium")
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)
    clusters = make_clusters()
    kg = make_kgate(clusters, token=BOOTSTRAP_TOKEN)
    operator = add_token(kg, "ui-operator", "operator")
    viewer = add_token(kg, "ui-viewer", "viewer")

    # The console's files need no token and carry the security headers.
    page = admin_http(kg.admin_port, "GET", "/ui/")
    assert page.status == 200 and "<script src=\"app.js\"" in page.text, page
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    again = admin_http(kg.admin_port, "GET", "/ui/app.js",
                       headers={"If-None-Match": admin_http(kg.admin_port, "GET", "/ui/app.js")
                                .headers["ETag"]})
    assert again.status == 304, again
    assert admin_http(kg.admin_port, "GET", "/ui/nothing.js").status == 404
    assert admin_http(kg.admin_port, "GET", "/v1/status").status == 401  # the data needs a token

    drill = record_drill(kg, tmp_path, operator)
    run = ClientRun("confluent", kg.bootstrap("default"), "fo-confluent", tmp_path).start()
    try:
        wait_for(lambda: len(run.received()) >= 20, 120, interval=0.2,
                 what="the consumer to receive through kgate")
        events = run_console({"admin": kg.admin_url, "operator": operator, "viewer": viewer,
                              "adminToken": BOOTSTRAP_TOKEN,
                              "vcluster": "default", "primary": "east", "secondary": "west",
                              "drill": drill, "shots": SHOTS, "chromium": CHROMIUM}, run)
        # The clients kept working: records sent after the failback are acked and received.
        t_back = events["failback"]["t"]
        wait_for(lambda: len(run.acked_sent_after(t_back)) >= 20, 120, interval=0.2,
                 what="records produced after the failback to be acked")
        wait_for(lambda: any(t >= t_back for t in run.received().values()), 120, interval=0.2,
                 what="the consumer to receive after the failback")
        run.check_healthy()
    finally:
        run.stop()

    assert not events.get("pageerror"), events.get("pageerror")
    assert "operator" in events["login"]["who"]
    over, back = events["failover"], events["failback"]
    assert "Parity with west: 0 difference(s)" in over["parity"], over
    assert any("east → west" in line for line in over["timeline"]), over
    assert any("connection(s) closed" in line for line in over["timeline"]), over
    assert any("First request on west" in line for line in over["timeline"]), over
    assert any("First request on east" in line for line in back["timeline"]), back
    vc = kg.vcluster_status("default")
    assert vc["active"] == "east" and vc["epoch"] == 2, vc
    switches = [e for e in kg.audit_entries() if e["type"] == "switch"]
    assert [(e["details"]["to"], e["details"]["reason"]) for e in switches] == [
        ("west", "console test failover"), ("east", "console test failback")], switches
    assert all(e["details"]["actor"].startswith("token:ui-operator") for e in switches)
    assert any("console test failover" in s for s in events["audit"]["switches"]), events["audit"]
    assert "intact" in events["audit"]["verify"]
    rule = events["chaos-added"]["id"]
    assert "latency" in events["chaos-added"]["row"]
    assert kg.http("GET", f"/v1/chaos/rules/{rule}").status == 404  # removed with the button
    assert events["charts"]["canvases"] == 6
    # The charts' data: kgate's own history, sampled while the clients ran.
    one = kg.http("GET", "/v1/vclusters/default/history?seconds=3600")
    assert one.status == 200 and one.json["name"] == "default", one
    assert any(p["requests_per_s"] > 0 for p in one.json["points"]), one.json
    assert kg.http("GET", "/v1/vclusters/nosuch/history").status == 404
    assert kg.http("GET", "/v1/history?seconds=0").status == 400
    assert kg.http("GET", "/v1/history", token=viewer).json["vclusters"][0]["name"] == "default"
    assert kg.http("GET", "/v1/whoami", token=viewer).json == {"token": "ui-viewer",
                                                               "role": "viewer"}
    exp = kg.http("GET", f"/v1/experiments/{events['experiment']['id']}")
    assert exp.status == 200 and exp.json["status"] == "stopped", exp
    assert exp.json["name"] == "console drill" and exp.json["stopped_by"].startswith(
        "token:ui-operator"), exp.json
    assert events["experiment"]["report"]["experiment"] == events["experiment"]["id"]
    assert drill in events["drills"]["row"] and "passed" in events["drills"]["row"], events
    assert "## 1. Hypothesis" in events["drills"]["report"], events["drills"]
    assert "a 1 s latency fault costs no producer error" in events["drills"]["report"]
    # Users & ACLs: the operator has no admin forms; the admin added and removed both.
    assert events["operator-security"]["userForm"] is False
    assert any("ui-alice" in u and "SCRAM-SHA-256" in u for u in events["admin"]["users"]), events
    assert any("User:alice" in a and "orders" in a for a in events["admin"]["acls"]), events
    assert kg.http("GET", "/v1/users").json["users"] == []
    assert kg.http("GET", "/v1/acls").json["acls"] == []
    audited = {e["type"] for e in kg.audit_entries()}
    assert {"user.create", "user.delete", "acl.create", "acl.delete"} <= audited, audited
    viewer_ev = events["viewer"]
    assert "viewer" in viewer_ev["who"]
    assert not viewer_ev["buttonVisible"] and viewer_ev["buttonDisabled"], viewer_ev
    assert not viewer_ev["chaosFormVisible"], viewer_ev
    assert viewer_ev["api"]["status"] == 403, viewer_ev
    assert kg.vcluster_status("default")["epoch"] == 2  # the viewer's call changed nothing
    shots = events["done"]["shots"]
    print_flush("console screenshots:\n  " + "\n  ".join(shots))
    assert all(os.path.getsize(s) > 1000 for s in shots)


@pytest.mark.guard(300)
def test_console_overview_shows_the_fleet(make_clusters, make_kgate, pg_url, tmp_path):
    """Two instances sharing a PostgreSQL state: the overview lists both, serving, with the
    vcluster's epoch."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: scripts/install-deps installs Debian's chromium")
    os.makedirs(SHOTS, exist_ok=True)
    clusters = make_clusters()
    kgates = [make_kgate(clusters, state_path=pg_url, token=BOOTSTRAP_TOKEN,
                         extra_lines=[f"instance: {{ name: {name} }}"])
              for name in ("gw-a", "gw-b")]
    wait_for(lambda: len(kgates[0].status()["fleet"]["instances"]) == 2, 60, interval=0.2,
             what="both instances in the fleet")
    events = run_console({"mode": "fleet", "admin": kgates[0].admin_url, "vcluster": "default",
                          "operator": BOOTSTRAP_TOKEN, "instances": 2, "shots": SHOTS,
                          "chromium": CHROMIUM}, None)
    rows = sorted(events["fleet"]["rows"])
    assert rows[0].startswith("gw-a") and rows[1].startswith("gw-b"), rows
    assert all("serving" in r and "default=0" in r for r in rows), rows
