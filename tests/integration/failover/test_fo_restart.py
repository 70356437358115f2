"""The switch survives kgate: a restart after a failover comes back on the secondary with the same
epoch, and SIGKILL at any point of a switch leaves exactly one active side, an intact audit chain
and a state that agrees with the last audited switch.

The kill test proves that it tested something: switches must have been answered 200 before a
kill, and kills must have landed while a switch call was in flight (its request fully sent
before the kill, the connection then cut without an answer because kgate died). Each call is a
raw HTTP exchange, so "refused" (kgate already dead when the call connected) and "cut" (kgate
died with the call open) are told apart exactly; the kill time is taken right before SIGKILL."""

import json
import random
import socket
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
def test_restart_after_failover_comes_back_on_secondary(make_clusters, make_kgate,
                                                        state_location):
    clusters = make_clusters()
    east, west = clusters["east"], clusters["west"]
    kg = make_kgate(clusters, state_path=state_location)
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


def answer_complete(data):
    head, sep, payload = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(payload) >= int(value.strip())
    return False


def switch_call(kg, failback, reason="kill loop", timeout=30):
    """One failover/failback as a raw HTTP/1.0 exchange. Returns a dict: outcome ("answered",
    "refused": no connection, "cut": connection closed or reset without a complete answer),
    status/body when answered, and t_start, t_sent (request fully written, None if never),
    t_end."""
    body = json.dumps({"reason": reason} if failback else {"reason": reason, "to": "west"})
    path = f"/v1/vclusters/default/{'failback' if failback else 'failover'}"
    headers = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
               "Content-Type: application/json", f"Content-Length: {len(body)}"]
    if kg.token:
        headers.append(f"Authorization: Bearer {kg.token}")
    request = ("\r\n".join(headers) + "\r\n\r\n" + body).encode()
    call = {"failback": failback, "t_start": time.time(), "t_sent": None}
    try:
        s = socket.create_connection(("127.0.0.1", kg.admin_port), timeout=timeout)
    except ConnectionRefusedError:
        call.update(outcome="refused", t_end=time.time())
        return call
    data = b""
    try:
        s.settimeout(timeout)
        try:
            s.sendall(request)
            call["t_sent"] = time.time()
            for _ in range(10000):  # bounded: an answer is a few hundred bytes
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if answer_complete(data):
                    break
        except (ConnectionResetError, BrokenPipeError):
            pass
    finally:
        s.close()
    call["t_end"] = time.time()
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if answer_complete(data) and len(status_line) >= 2 and status_line[1].isdigit():
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
        if parsed is not None or int(status_line[1]) != 200:
            call.update(outcome="answered", status=int(status_line[1]), body=parsed)
            return call
    call.update(outcome="cut", received=len(data))
    return call


def fire_switches(kg, calls, stop, failback, max_calls=100000):
    """Failover and failback requests back to back, each one a real switch (starting with a
    failback when west is active), until kgate dies (a call is refused or cut) or stop is set
    (bounded by max_calls). Appends every call's record to calls."""
    for _ in range(max_calls):
        if stop.is_set():
            return
        call = switch_call(kg, failback)
        calls.append(call)
        if call["outcome"] != "answered":
            return  # killed
        failback = not failback


def stored_state(state_path, pg_server=None):
    """The state as kgate left it (kgate is dead): integrity, vcluster rows, last switch. On
    PostgreSQL (PG_SERVER given), the rows of the database STATE_PATH names."""
    if pg_server is not None:
        rows = pg_server.sql("SELECT name, active, epoch FROM vcluster_state",
                             db=state_path.rsplit("/", 1)[1])
        return [(name, active, int(epoch)) for name, active, epoch in rows]
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


@pytest.mark.guard(300)
def test_sigkill_during_switches_leaves_consistent_state(make_clusters, make_kgate,
                                                         state_location, request):
    clusters = make_clusters()
    kg = make_kgate(clusters, state_path=state_location)
    pg_server = request.getfixturevalue("pg_server") if state_location else None
    rng = random.Random()
    # At least MIN_KILLS kills; more (up to MAX_KILLS) until both kinds of kill were seen.
    MIN_KILLS, MAX_KILLS = 20, 60
    answered_before_kill, in_flight_kills, refused_kills, epochs = 0, [], 0, []
    vc = kg.vcluster_status("default")
    epoch_before = vc["epoch"]
    for i in range(MAX_KILLS):
        if i >= MIN_KILLS and answered_before_kill and in_flight_kills:
            break
        calls, stop = [], threading.Event()
        firing = threading.Thread(target=fire_switches,
                                  args=(kg, calls, stop, vc["active"] == "west"))
        firing.start()
        time.sleep(rng.uniform(0.0, 0.04))  # where the kill lands: random, not a bound
        t_kill = time.time()
        kg.kill9()
        stop.set()
        firing.join(60)
        assert not firing.is_alive(), "the switch calls did not end after the kill"

        answered = [c for c in calls if c["outcome"] == "answered"]
        bad = [c for c in answered if c["status"] != 200 or not c["body"].get("changed")]
        assert not bad, f"a switch was answered but not done: {bad}"
        # Every answered switch stored the next epoch (one switch at a time).
        assert [c["body"]["epoch"] for c in answered] == \
            list(range(epoch_before + 1, epoch_before + 1 + len(answered))), (epoch_before, answered)
        answered_before_kill += len(answered)
        last = calls[-1] if calls else None
        in_flight = (last is not None and last["outcome"] == "cut"
                     and last["t_sent"] is not None and last["t_sent"] < t_kill)
        if in_flight:
            in_flight_kills.append(i)
        elif last is not None and last["outcome"] == "refused":
            refused_kills += 1

        rows = stored_state(kg.state_path, pg_server)
        # Exactly one active side: one row (or none yet: east, epoch 0, by default).
        assert len(rows) <= 1 and all(r[0] == "default" and r[1] in ("east", "west")
                                      for r in rows), rows

        kg.start()
        vc = check_consistent(kg, [(c["body"]["epoch"], c["body"]["to"]) for c in answered])
        assert [(vc["active"], vc["epoch"])] == [(r[1], r[2]) for r in rows] or \
            (not rows and vc["epoch"] == 0), (vc, rows)
        # The switch cut by the kill happened entirely or not at all; nothing else changed. (A
        # call may also be cut that was sent between t_kill and the signal's delivery: it too
        # may have been stored, it just does not count as a kill that landed in flight.)
        done = epoch_before + len(answered)
        allowed = (done, done + 1) if last is not None and last["outcome"] == "cut" else (done,)
        assert vc["epoch"] in allowed, (
            f"kill {i}: epoch {vc['epoch']} after the restart, {len(answered)} switches answered "
            f"from epoch {epoch_before}, last call {last}")
        epoch_before = vc["epoch"]
        epochs.append(vc["epoch"])
    print_flush(f"{len(epochs)} kills: {answered_before_kill} switches answered 200 before a "
                f"kill, {len(in_flight_kills)} kills landed while a switch call was in flight "
                f"(request sent, answer cut by the kill), {refused_kills} between calls; epochs "
                f"after each restart: {epochs}")
    assert answered_before_kill > 0, "no switch was ever answered before a kill"
    assert in_flight_kills, (f"no kill landed while a switch call was in flight in {len(epochs)} "
                             f"kills")
    assert epochs == sorted(epochs), "an epoch went backwards across a crash"
