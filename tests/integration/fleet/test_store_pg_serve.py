"""kgate serving with its state in a real PostgreSQL 15: a failover with a real client (kcat),
the state surviving a restart, two instances on one database switching at once (one 200, one
409 naming the winner), pg_notify at commit, concurrent migrations, a newer schema refused,
a bad password (never logged), PostgreSQL down at start and stopped/restarted mid-run, and
`kgate migrate-state` from SQLite."""

import concurrent.futures
import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest

import kghelpers
from fohelpers import Kgate
from pgserver import PASSWORD, PASSWORD_ROLE
from test_fo_restart import kcat_consume_all, kcat_produce

TOPIC = "fo-misc"
# Every test here runs kgate (serve, migrate, migrate-state): none with KGATE_TEST_DIRECT=1.
pytestmark = pytest.mark.kgate_only


def kgate_cli(*args, timeout=120):
    return subprocess.run([kghelpers.KGATE_BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def db_rows(pg_server, url, sql):
    return pg_server.sql(sql, db=url.rsplit("/", 1)[1].split("?")[0])


def stored_state(pg_server, url, vcluster="default"):
    rows = db_rows(pg_server, url,
                   f"SELECT active, epoch FROM vcluster_state WHERE name = '{vcluster}'")
    return (rows[0][0], int(rows[0][1])) if rows else None


def add_config_lines(kg, *lines):
    with open(kg.config_path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.guard(240)
def test_failover_on_postgres_with_kcat_and_state_survives_restart(make_clusters, make_kgate,
                                                                    pg_server, pg_url):
    clusters = make_clusters()
    east, west = clusters["east"], clusters["west"]
    kg = make_kgate(clusters, state_path=pg_url)
    boot = kg.bootstrap("default")

    before = {"east": sum(east.end_offsets(TOPIC).values()),
              "west": sum(west.end_offsets(TOPIC).values())}
    kcat_produce(boot, TOPIC, [f"before-{i}" for i in range(10)])
    assert sum(east.end_offsets(TOPIC).values()) == before["east"] + 10

    reply, _, _ = kg.switch("default", to="west", reason="pg failover")
    assert reply.status == 200 and reply.json["changed"], reply
    epoch = reply.json["epoch"]
    assert stored_state(pg_server, pg_url) == ("west", epoch)

    kcat_produce(boot, TOPIC, [f"after-{i}" for i in range(10)])
    assert sum(west.end_offsets(TOPIC).values()) == before["west"] + 10
    assert sum(east.end_offsets(TOPIC).values()) == before["east"] + 10
    assert sum(v.startswith("after-") for v in kcat_consume_all(boot, TOPIC)) == 10

    assert kg.stop() == 0, kg.log()
    kg.start()
    vc = kg.vcluster_status("default")
    assert (vc["active"], vc["epoch"]) == ("west", epoch), vc
    r = kg.http("GET", "/v1/audit/verify")
    assert r.status == 200 and r.json["intact"], r
    types = [e["type"] for e in kg.audit_entries()]
    assert "switch" in types and "switch.completed" in types, types
    # The chain rows are in PostgreSQL, not in a file next to the config.
    assert not os.path.exists(os.path.join(kg.work_dir, "state.db"))
    rows = db_rows(pg_server, pg_url, "SELECT count(*) FROM audit_log")
    assert int(rows[0][0]) == len(types)


@pytest.mark.guard(240)
def test_two_instances_switching_at_once_one_wins_and_notify_is_sent(make_clusters, make_kgate,
                                                                     pg_server, pg_url):
    clusters = make_clusters()
    a, b = (make_kgate(clusters, state_path=pg_url, start=False) for _ in range(2))
    for name, kg in (("race-a", a), ("race-b", b)):
        add_config_lines(kg, f"instance: {{ name: {name} }}")  # one name per instance
        kg.start()
    # A listener on the database, as the fleet module's: it must hear of the switch.
    listener = subprocess.Popen(
        ["psql", "-X", "-q", "-A", "-t", "-h", pg_server.sockdir, "-p", str(pg_server.port), "-U", "kgate",
         "-d", pg_url.rsplit("/", 1)[1]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener.stdin.write("LISTEN kgate_switch;\nSELECT 'listening';\n")
    listener.stdin.flush()
    assert listener.stdout.readline().strip() == "listening"

    barrier = threading.Barrier(2)

    def switch(kg):
        barrier.wait()
        return kg.switch("default", to="west", reason="race")[0]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(switch, [a, b]))
    won = [r for r in replies if r.status == 200 and r.json["changed"]]
    assert len(won) == 1, replies
    won = won[0]
    lost = next(r for r in replies if r is not won)
    # The loser either raced the winner's commit (409 naming it) or had already applied the
    # winner's switch through the fleet's notification (nothing left to do, same epoch).
    refusals = 0
    if lost.status == 409:
        assert f"'west' active at epoch {won.json['epoch']}" in lost.json["error"], lost
        refusals = 1
    else:
        assert lost.status == 200 and lost.json["changed"] is False, lost
        assert lost.json["epoch"] == won.json["epoch"], lost
    assert stored_state(pg_server, pg_url) == ("west", won.json["epoch"])
    # One switch in the chain, at most one refusal naming the winner; the chain is intact.
    entries = a.audit_entries()
    assert [e["type"] for e in entries].count("switch") == 1, entries
    refused = [e for e in entries if e["type"] == "switch.refused"]
    assert len(refused) == refusals, refused
    assert all(e["details"]["winner"]["active"] == "west" for e in refused), refused
    r = b.http("GET", "/v1/audit/verify")
    assert r.status == 200 and r.json["intact"], r

    out, _ = listener.communicate("SELECT 'done';\n\\q\n", timeout=30)
    assert re.search(r'notification "kgate_switch" with payload "default"', out), out


def test_concurrent_starts_migrate_once(pg_server, pg_url):
    procs = [subprocess.Popen([kghelpers.KGATE_BIN, "migrate", "--state", pg_url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0, err
        assert "(postgres): schema version 2" in out, out
    for migration in (1, 2):
        applied = [err for _, err, _ in results
                   if f"applied schema migration {migration}" in err]
        assert len(applied) == 1, results
    assert db_rows(pg_server, pg_url, "SELECT value FROM meta WHERE key = 'schema_version'") == \
        [["2"]]
    # Every table is there, kg_instances for the fleet module included.
    tables = {r[0] for r in db_rows(pg_server, pg_url,
                                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"vcluster_state", "audit_log", "audit_head", "docs", "users", "acls", "tokens",
            "kg_instances", "meta", "planned_holds", "planned_acks"} <= tables, tables


def test_newer_schema_version_is_refused(make_clusters, pg_server, pg_url, tmp_path):
    assert kgate_cli("migrate", "--state", pg_url).returncode == 0
    db_rows(pg_server, pg_url, "UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    r = kgate_cli("migrate", "--state", pg_url)
    assert r.returncode == 1
    assert "schema version 7" in r.stderr and "newer than this kgate's (2)" in r.stderr, r.stderr
    # serve refuses to start on it too (fail-closed), naming both versions.
    kg = Kgate({"east": "127.0.0.1:1", "west": "127.0.0.1:2"}, [("default", "east", "west")],
               tmp_path, state_path=pg_url)
    r = kgate_cli("serve", "-c", kg.config_path)
    assert r.returncode != 0
    assert "schema version 7" in r.stderr and "(2)" in r.stderr, r.stderr


def test_bad_password_is_a_clear_error_and_never_logged(pg_server, pg_url, tmp_path):
    db = pg_url.rsplit("/", 1)[1]
    pg_server.sql(f"GRANT ALL ON DATABASE {db} TO {PASSWORD_ROLE}")
    pg_server.sql(f"GRANT ALL ON SCHEMA public TO {PASSWORD_ROLE}", db=db)
    wrong = "Wr0ng-pass-Xy7"
    bad_url = pg_server.url(db, user=PASSWORD_ROLE, password=wrong)
    r = kgate_cli("migrate", "--state", bad_url)
    assert r.returncode == 1
    assert "password authentication failed" in r.stderr, r.stderr
    assert f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{pg_server.port}/{db}" in r.stderr
    assert wrong not in r.stdout + r.stderr
    # Through serve and its log the same: the error, never the password.
    kg = Kgate({"east": "127.0.0.1:1", "west": "127.0.0.1:2"}, [("default", "east", "west")],
               tmp_path, state_path=bad_url)
    r = kgate_cli("serve", "-c", kg.config_path)
    assert r.returncode != 0
    assert "password authentication failed" in r.stderr and wrong not in r.stderr, r.stderr
    # The right password works (so the failure above was the password, nothing else).
    good = kgate_cli("migrate", "--state", pg_server.url(db, user=PASSWORD_ROLE,
                                                         password=PASSWORD))
    assert good.returncode == 0, good.stderr
    assert PASSWORD not in good.stdout + good.stderr


@pytest.mark.guard(240)
def test_postgres_down_at_start_retries_then_fails_closed_or_comes_up(make_clusters, make_kgate,
                                                                      pg_server, pg_url):
    clusters = make_clusters()
    kg = make_kgate(clusters, state_path=pg_url, start=False)
    with open(kg.config_path) as f:
        config = f.read()
    with open(kg.config_path, "w") as f:
        f.write(config + "state_connect_timeout_ms: 2000\n")
    pg_server.stop()
    try:
        t0 = time.monotonic()
        r = kgate_cli("serve", "-c", kg.config_path)
        assert r.returncode != 0
        assert "cannot connect to PostgreSQL" in r.stderr and "retrying" in r.stderr, r.stderr
        assert time.monotonic() - t0 >= 2.0  # it retried for the configured time, not once

        # Started while PostgreSQL is down, it comes up once PostgreSQL is back in time.
        with open(kg.config_path, "w") as f:
            f.write(config + "state_connect_timeout_ms: 120000\n")
        log = os.path.join(kg.work_dir, "kgate-1.stderr")

        def start_pg_when_kgate_waits():
            wait_for(lambda: os.path.exists(log) and "retrying" in open(log).read(), 60,
                     "kgate to retry")
            pg_server.start()

        starter = threading.Thread(target=start_pg_when_kgate_waits)
        starter.start()
        try:
            kg.start()
        finally:
            starter.join()
        assert kg.vcluster_status("default")["active"] == "east"
        assert "cannot connect to PostgreSQL" in kg.log()
    finally:
        if not pg_server.running():
            pg_server.start()


@pytest.mark.guard(300)
def test_postgres_restarted_while_serving_503_then_works_no_switch_lost(make_clusters,
                                                                        make_kgate, pg_server,
                                                                        pg_url):
    clusters = make_clusters()
    kg = make_kgate(clusters, state_path=pg_url, start=False)
    # Serving from memory through an outage is what serve-last-known does; fail-closed (the
    # default) would stop serving once the instance's lease runs out (test_fleet_instances.py).
    add_config_lines(kg, "instance: { on_state_loss: serve-last-known }")
    kg.start()
    boot = kg.bootstrap("default")
    reply, _, _ = kg.switch("default", to="west", reason="before the outage")
    assert reply.status == 200, reply
    epoch = reply.json["epoch"]

    pg_server.stop()
    try:
        down = kg.switch("default", failback=True, reason="during the outage")[0]
        assert down.status == 503, down
        # Serving goes on from memory: clients still reach the active side.
        kcat_produce(boot, TOPIC, ["during-outage"])
        r = kg.http("GET", "/v1/audit/verify")
        assert r.status in (500, 503), r
    finally:
        pg_server.start()
    # Nothing was switched by the refused call: the store and kgate agree on west.
    assert stored_state(pg_server, pg_url) == ("west", epoch)
    status = kg.http("GET", "/v1/status")
    assert status.status == 200, (status, kg.log()[-4000:])
    assert [v["active"] for v in status.json["vclusters"]] == ["west"]

    # Once it is back, operations reconnect and work again.
    def failback_ok():
        r = kg.switch("default", failback=True, reason="after the outage")[0]
        return r.status == 200

    wait_for(failback_ok, 60, "a failback after PostgreSQL came back")
    assert stored_state(pg_server, pg_url) == ("east", epoch + 1)
    assert kg.vcluster_status("default")["epoch"] == epoch + 1
    r = kg.http("GET", "/v1/audit/verify")
    assert r.status == 200 and r.json["intact"], r
    switches = [e for e in kg.audit_entries() if e["type"] == "switch"]
    assert [e["details"]["epoch"] for e in switches] == [epoch, epoch + 1], switches


@pytest.mark.guard(300)
def test_migrate_state_from_sqlite_with_an_audit_chain(make_clusters, make_kgate, pg_server,
                                                       pg_url):
    clusters = make_clusters()
    kg = make_kgate(clusters)  # SQLite
    for to in ("west", "east", "west"):
        reply, _, _ = kg.switch("default", to=to, reason=f"to {to}")
        assert reply.status == 200, reply
    epoch = kg.vcluster_status("default")["epoch"]
    assert kg.stop() == 0, kg.log()
    # The source as it is at rest (stopping may have audited too).
    with sqlite3.connect(kg.state_path) as db:
        source_rows = db.execute("SELECT seq, ts, type, details, prev_hash, hash FROM audit_log"
                                 " ORDER BY seq").fetchall()
    assert len(source_rows) >= 3

    r = kgate_cli("migrate-state", "--from", kg.state_path, "--to", pg_url)
    assert r.returncode == 0, r.stderr
    assert f"audit_entries  {len(source_rows)}" in r.stdout, r.stdout
    assert f"head_hash      {source_rows[-1][5]}" in r.stdout, r.stdout
    assert "verified on both sides" in r.stdout

    # A second copy into the now non-empty target is refused without --force.
    again = kgate_cli("migrate-state", "--from", kg.state_path, "--to", pg_url)
    assert again.returncode == 1 and "--force" in again.stderr, again.stderr
    forced = kgate_cli("migrate-state", "--from", kg.state_path, "--to", pg_url, "--force")
    assert forced.returncode == 0, forced.stderr

    # A kgate on the PostgreSQL copy comes up on the same side and epoch, with the same chain.
    pg_kg = make_kgate(clusters, state_path=pg_url)
    vc = pg_kg.vcluster_status("default")
    assert (vc["active"], vc["epoch"]) == ("west", epoch), vc
    copied = [tuple(r) for r in db_rows(pg_server, pg_url,
                                        "SELECT seq, ts, type, details, prev_hash, hash"
                                        " FROM audit_log ORDER BY seq")]
    assert copied[:len(source_rows)] == [tuple(str(c) for c in r) for r in source_rows]
    r = pg_kg.http("GET", "/v1/audit/verify")
    assert r.status == 200 and r.json["intact"], r


@pytest.mark.guard(240)
def test_slow_database_times_out_a_switch_then_it_works(make_clusters, make_kgate, pg_server,
                                                        pg_url):
    """Another session holds the lock every writer needs: the switch fails after
    state_statement_timeout_ms (503, nothing switched) instead of hanging the API."""
    clusters = make_clusters()
    kg = make_kgate(clusters, state_path=pg_url, start=False)
    add_config_lines(kg, "state_statement_timeout_ms: 500")
    kg.start()
    blocker = subprocess.Popen(
        ["psql", "-X", "-q", "-A", "-t", "-h", pg_server.sockdir, "-p", str(pg_server.port),
         "-U", "kgate", "-d", pg_url.rsplit("/", 1)[1]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        blocker.stdin.write("BEGIN;\nSELECT 'locked' FROM audit_head FOR UPDATE;\n")
        blocker.stdin.flush()
        assert blocker.stdout.readline().strip() == "locked"
        slow = kg.switch("default", to="west", reason="while locked")[0]
        assert slow.status == 503, slow
        assert "statement timeout" in kg.log(), kg.log()[-3000:]
        assert kg.vcluster_status("default")["active"] == "east"
    finally:
        blocker.communicate("ROLLBACK;\n\\q\n", timeout=30)
    reply = kg.switch("default", to="west", reason="after the lock")[0]
    assert reply.status == 200, reply
    assert stored_state(pg_server, pg_url) == ("west", reply.json["epoch"])
