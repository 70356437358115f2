"""The switch survives kgate: a restart after a failover comes back on the secondary with the same
epoch, and SIGKILL at any point of a switch leaves exactly one active side, an intact audit chain
and a state that agrees with the last audited switch."""

import http.client
import random
import sqlite3
import subprocess
import threading
import time

import pytest

from fohelpers import metric, print_flush


def kcat_produce(bootstrap, topic, values):
    cp = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X",
                         "broker.address.family=v4", "-X", "message.timeout.ms=30000"],
                        input="".join(v + "\n" for v in values).encode(),
                        stderr=subprocess.PIPE, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode()


def kcat_consume_all(bootstrap, topic):
    cp = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%s\\n",
                         "-X", "broker.address.family=v4"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode()
    return cp.stdout.decode().split()


@pytest.mark.guard(120)
def test_restart_after_failover_comes_back_on_secondary(make_clusters, make_kgate):
    clusters = make_clusters()
    east, west = clusters["east"], clusters["west"]
    kg = make_kgate(clusters)
    reply, _, _ = kg.switch("default", to="west", reason="restart test")
    assert reply.status == 200 and reply.json["changed"], reply
    epoch = reply.json["epoch"]

    assert kg.stop() == 0, kg.log()
    kg.start()
    vc = kg.vcluster_status("default")
    assert (vc["active"], vc["epoch"]) == ("west", epoch), vc
    samples = kg.metrics()
    assert metric(samples, "kgate_vcluster_active", vcluster="default", cluster="west") == 1
    assert metric(samples, "kgate_vcluster_active", vcluster="default", cluster="east") == 0
    assert metric(samples, "kgate_vcluster_epoch", vcluster="default") == epoch

    # Clients are served by west: what they produce lands there, east does not move.
    east_before = east.end_offsets("fo-misc")
    values = [f"after-restart-{i}" for i in range(20)]
    kcat_produce(kg.bootstrap("default"), "fo-misc", values)
    on_west = {v for _, _, v in west.read_all("fo-misc")}
    assert set(values) <= on_west
    assert east.end_offsets("fo-misc") == east_before
    assert set(kcat_consume_all(kg.bootstrap("default"), "fo-misc")) == on_west

    # Epochs keep counting from the stored one.
    reply, _, _ = kg.switch("default", failback=True, reason="back after restart")
    assert reply.status == 200 and reply.json["epoch"] == epoch + 1, reply


def fire_switches(kg, acknowledged, stop):
    """Failover and failback requests back to back until kgate dies. Records each answered
    switch (epoch, to)."""
    failback = False
    while not stop.is_set():
        try:
            reply, _, _ = kg.switch("default", failback=failback,
                                    to=None if failback else "west", reason="kill loop")
        except (OSError, http.client.HTTPException):
            return  # killed
        if reply.status == 200 and reply.json.get("changed"):
            acknowledged.append((reply.json["epoch"], reply.json["to"]))
        failback = not failback


def stored_state(state_path):
    """The state file as kgate left it (kgate is dead): integrity, vcluster rows, last switch."""
    db = sqlite3.connect(state_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT name, active, epoch FROM vcluster_state").fetchall()
        return rows
    finally:
        db.close()


def check_consistent(kg, acknowledged):
    vc = kg.vcluster_status("default")
    assert vc["active"] in ("east", "west"), vc
    verify = kg.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout, verify.stdout
    api = kg.http("GET", "/v1/audit/verify")
    assert api.status == 200 and api.json["intact"] is True, api

    switches = [e["details"] for e in kg.audit_entries() if e["type"] == "switch"]
    # Every switch is audited in the transaction that stores it: epochs 1..N, one entry each.
    assert [d["epoch"] for d in switches] == list(range(1, len(switches) + 1)), switches
    if switches:
        assert (vc["active"], vc["epoch"]) == (switches[-1]["to"], switches[-1]["epoch"]), \
            (vc, switches[-1])
    else:
        assert (vc["active"], vc["epoch"]) == ("east", 0), vc
    # A switch that was answered before the kill is durable.
    if acknowledged:
        assert vc["epoch"] >= acknowledged[-1][0], (vc, acknowledged[-1])
    return vc


@pytest.mark.guard(240)
def test_sigkill_during_switches_leaves_consistent_state(make_clusters, make_kgate):
    clusters = make_clusters()
    kg = make_kgate(clusters)
    rng = random.Random()
    iterations, answered, epochs = 20, 0, []
    for i in range(iterations):
        acknowledged, stop = [], threading.Event()
        firing = threading.Thread(target=fire_switches, args=(kg, acknowledged, stop))
        firing.start()
        time.sleep(rng.uniform(0.0, 0.04))
        kg.kill9()
        stop.set()
        firing.join(30)
        assert not firing.is_alive()
        answered += len(acknowledged)
        rows = stored_state(kg.state_path)
        # Exactly one active side: one row (or none yet: east, epoch 0, by default).
        assert len(rows) <= 1 and all(r[0] == "default" and r[1] in ("east", "west")
                                      for r in rows), rows

        kg.start()
        vc = check_consistent(kg, acknowledged)
        assert [(vc["active"], vc["epoch"])] == [(r[1], r[2]) for r in rows] or \
            (not rows and vc["epoch"] == 0), (vc, rows)
        epochs.append(vc["epoch"])
    print_flush(f"{iterations} kills, {answered} switches answered before a kill; epochs after "
                f"each restart: {epochs}")
    assert epochs == sorted(epochs), "an epoch went backwards across a crash"
