"""`--json` everywhere: every CLI command that prints a report prints the API's JSON with --json,
parsed here (json.loads) and checked for a field that only the real answer carries. One kgate in
front of two dev clusters; the commands run in the order an operator would."""

import json
import os
import subprocess

import pytest

import kghelpers

TOKEN = "cli-json-bootstrap-token-0123456789abcdef"


def cli_json(kg, *args, expect_rc=0, stdin=None):
    cp = kg.cli(*args, "--json") if stdin is None else subprocess.run(
        [kghelpers.KGATE_BIN, *args, "--json", "-c", kg.config_path], input=stdin,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert cp.returncode == expect_rc, (args, cp.returncode, cp.stdout, cp.stderr)
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        raise AssertionError(f"kgate {' '.join(args)} --json printed no JSON ({e}):\n"
                             f"{cp.stdout}\nstderr: {cp.stderr}")


@pytest.mark.guard(300)
def test_every_report_command_prints_the_apis_json(make_clusters, make_kgate):
    kg = make_kgate(make_clusters(), token=TOKEN)

    status = cli_json(kg, "status")
    assert [v["name"] for v in status["vclusters"]] == ["default"]
    assert {c["name"] for c in status["clusters"]} == {"east", "west"}

    parity = cli_json(kg, "parity", "default")
    assert parity["vcluster"] == "default" and parity["to"] == "west" and parity["count"] == 0

    over = cli_json(kg, "failover", "default", "--reason", "json test")
    assert over["changed"] is True and over["to"] == "west" and over["epoch"] == 1
    back = cli_json(kg, "failback", "default", "--reason", "json test")
    assert back["to"] == "east" and back["epoch"] == 2

    audit = cli_json(kg, "audit", "list")
    assert [e["type"] for e in audit["entries"]].count("switch") == 2
    verify = cli_json(kg, "audit", "verify")
    assert verify["intact"] is True

    rule = cli_json(kg, "chaos", "add", "latency", "--delay-ms", "1", "--vcluster", "default",
                    "--topic", "json-none-.*", "--for", "10m")
    assert rule["type"] == "latency" and rule["id"]
    rules = cli_json(kg, "chaos", "list")
    listed = rules["rules"] if isinstance(rules, dict) else rules
    assert [r["id"] for r in listed] == [rule["id"]]
    cli_json(kg, "chaos", "rm", rule["id"])
    rules = cli_json(kg, "chaos", "list")
    assert (rules["rules"] if isinstance(rules, dict) else rules) == []

    experiments = cli_json(kg, "experiment", "list")
    assert experiments["experiments"] == [] if isinstance(experiments, dict) else experiments == []
    drill = os.path.join(kg.work_dir, "drill.json")
    with open(drill, "w") as f:
        json.dump({"name": "json drill", "hypothesis": "nothing happens", "vcluster": "default",
                   "duration": "10m", "baseline": "1s",
                   "rules": [{"type": "latency", "delay_ms": 1, "topic": "json-none-.*"}]}, f)
    created = cli_json(kg, "experiment", "run", drill)
    assert created["name"] == "json drill" and created["id"], created
    shown = cli_json(kg, "experiment", "status", created["id"])
    assert shown["id"] == created["id"] and shown["vcluster"] == "default", shown
    stopped = cli_json(kg, "experiment", "stop", created["id"])
    assert stopped["id"] == created["id"], stopped
    report = cli_json(kg, "experiment", "report", created["id"])
    assert report["experiment"] == created["id"] and "hypothesis" in report, report
    experiments = cli_json(kg, "experiment", "list")
    listed = experiments["experiments"] if isinstance(experiments, dict) else experiments
    assert [x["id"] for x in listed] == [created["id"]]

    token = cli_json(kg, "token", "add", "json-viewer", "--role", "viewer")
    assert token["name"] == "json-viewer" and token["role"] == "viewer" and token["token"]
    tokens = cli_json(kg, "token", "list")
    listed = tokens["tokens"] if isinstance(tokens, dict) else tokens
    assert "json-viewer" in [t["name"] for t in listed]
    removed = cli_json(kg, "token", "rm", "json-viewer")
    assert removed

    users = cli_json(kg, "users", "list")
    assert users == [] or users.get("users") == []
    added = cli_json(kg, "users", "add", "alice", "--mechanism", "SCRAM-SHA-256",
                     "--password-stdin", stdin="alice-secret-password\n")
    assert added["name"] == "alice", added
    users = cli_json(kg, "users", "list")
    assert [u["name"] for u in (users if isinstance(users, list) else users["users"])] == ["alice"]
    acls = cli_json(kg, "acl", "list")
    assert acls == [] or acls.get("acls") == []
    added = cli_json(kg, "acl", "add", "--allow", "User:alice", "--operation", "read",
                     "--topic", "orders")
    assert added["acls"][0]["principal"] == "User:alice", added
    acls = cli_json(kg, "acl", "list")
    listed = acls if isinstance(acls, list) else acls["acls"]
    assert [(a["principal"], a["resource_name"]) for a in listed] == [("User:alice", "orders")]

    drills = cli_json(kg, "drill", "list")
    assert (drills["drills"] if isinstance(drills, dict) else drills) == [], drills
    drain = cli_json(kg, "drain", "status")
    assert drain["state"] == "serving"
    reload = cli_json(kg, "reload")
    assert reload["reloaded"] == kg.config_path

    # An API error is JSON too, and the exit status still says it failed.
    err = cli_json(kg, "failover", "nosuch", expect_rc=1)
    assert "error" in err


def run_json(*args, expect_rc=0):
    cp = subprocess.run([kghelpers.KGATE_BIN, *args, "--json"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=60)
    assert cp.returncode == expect_rc, (args, cp.returncode, cp.stdout, cp.stderr)
    return json.loads(cp.stdout)


def test_local_commands_print_json(tmp_path):
    """The commands that need no running kgate: version, check, migrate, migrate-state."""
    assert run_json("version")["version"] == \
        subprocess.run([kghelpers.KGATE_BIN, "version"], stdout=subprocess.PIPE,
                       text=True).stdout.split()[1]
    good = tmp_path / "good.yaml"
    good.write_text(kghelpers.kgate_config_yaml({"east": "127.0.0.1:1", "west": "127.0.0.1:2"},
                                                [("default", 19092, "east", "west")], 19644,
                                                str(tmp_path / "state.db")))
    report = run_json("check", "-c", str(good))
    assert report == {"path": str(good), "ok": True, "clusters": 2, "vclusters": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: 127.0.0.1\nclusters: {}\nfrobnicate: 1\n")
    report = run_json("check", "-c", str(bad), expect_rc=1)
    assert report["ok"] is False and any("frobnicate" in e for e in report["errors"]), report

    one, two = str(tmp_path / "one.db"), str(tmp_path / "two.db")
    migrated = run_json("migrate", "--state", one)
    assert migrated["backend"] == "sqlite" and migrated["schema_version"] >= 1, migrated
    copied = run_json("migrate-state", "--from", one, "--to", two)
    assert copied["to_backend"] == "sqlite" and copied["audit_chain_verified"] is True, copied
    assert isinstance(copied["copied"], dict) and os.path.exists(two)
