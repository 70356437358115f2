"""The audit log is tamper-evident: editing, deleting or reordering entries in the state store
(the SQLite file while kgate is stopped, or its PostgreSQL database) is reported by
`kgate audit verify` (exit 1) and by GET /v1/audit/verify (intact: false). The chain is also
checked independently here, from the format docs/api.md documents."""

import hashlib
import json
import sqlite3

import pytest

from pgserver import PsqlConnection

ZERO_HASH = "0" * 64


def connect(state_path, pg_server=None):
    """The store as a DB-API connection: the SQLite file, or (PG_SERVER given) the PostgreSQL
    database STATE_PATH names, through psql."""
    if pg_server is not None:
        return PsqlConnection(pg_server, state_path.rsplit("/", 1)[1])
    return sqlite3.connect(state_path)


def pg_server_for(state_location, request):
    return request.getfixturevalue("pg_server") if state_location else None


def entry_hash(seq, ts, type_, details, prev_hash):
    """docs/api.md: SHA-256 of the compact JSON array [seq, ts, type, details, prev_hash], object
    keys sorted at every level, UTF-8 - serialized by a standard JSON serializer (Python's)."""
    text = json.dumps([seq, ts, type_, details, prev_hash], separators=(",", ":"),
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash_stored_text(seq, ts, type_, details_text, prev_hash):
    """The same array, with the details spliced in exactly as kgate stored them (kgate's own
    rendering of numbers)."""
    text = (f"[{seq},{json.dumps(ts, ensure_ascii=False)},{json.dumps(type_, ensure_ascii=False)},"
            f"{details_text},{json.dumps(prev_hash)}]")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_rows(db):
    return db.execute("SELECT seq, ts, type, details, prev_hash, hash FROM audit_log "
                      "ORDER BY seq").fetchall()


def independent_verify(path, stored_text=True, pg_server=None):
    """None when the chain and head record are intact, else what is wrong. stored_text: hash the
    details as stored (else re-serialize them with Python's json, as docs/api.md describes)."""
    db = connect(path, pg_server)
    try:
        rows = read_rows(db)
        head = db.execute("SELECT last_seq, last_hash FROM audit_head").fetchone()
    finally:
        db.close()
    prev = ZERO_HASH
    for i, (seq, ts, type_, details, prev_hash, hash_) in enumerate(rows, start=1):
        if seq != i:
            return f"seq {seq} where {i} was expected"
        if prev_hash != prev:
            return f"entry {seq} links to {prev_hash[:12]}, predecessor is {prev[:12]}"
        computed = (entry_hash_stored_text(seq, ts, type_, details, prev_hash) if stored_text
                    else entry_hash(seq, ts, type_, json.loads(details), prev_hash))
        if computed != hash_:
            return f"entry {seq}: hash does not match its contents {details}"
        prev = hash_
    if head is None:
        return None if not rows else "no head record"
    if head != (len(rows), prev):
        return f"head {head} does not match the last entry ({len(rows)}, {prev[:12]})"
    return None


def make_history(kg):
    """Three switches and a refused one: 7 entries."""
    for failback, to in ((False, "west"), (True, None), (False, "west")):
        reply, _, _ = kg.switch("default", failback=failback, to=to, reason="audit history")
        assert reply.status == 200 and reply.json["changed"], reply
    refused = kg.http("POST", "/v1/vclusters/default/failover", {"to": "nowhere"})
    assert refused.status in (404, 409), refused
    entries = kg.audit_entries()
    assert [e["type"] for e in entries][:6] == ["switch", "switch.completed"] * 3, entries
    return entries


def tamper_edit(db):
    seq, details = db.execute("SELECT seq, details FROM audit_log WHERE seq = 3").fetchone()
    d = json.loads(details)
    d["reason"] = "nothing happened here"
    db.execute("UPDATE audit_log SET details = ? WHERE seq = ?", (json.dumps(d), seq))


def tamper_edit_rehash(db):
    """An edit that also recomputes the entry's own hash: the next entry still links to the old
    one."""
    seq, ts, type_, details, prev_hash, _ = read_rows(db)[2]
    d = json.loads(details)
    d["to"] = "east" if d.get("to") == "west" else "west"
    db.execute("UPDATE audit_log SET details = ?, hash = ? WHERE seq = ?",
               (json.dumps(d), entry_hash(seq, ts, type_, d, prev_hash), seq))


def tamper_delete_middle(db):
    db.execute("DELETE FROM audit_log WHERE seq = 3")


def tamper_delete_first(db):
    db.execute("DELETE FROM audit_log WHERE seq = 1")


def tamper_delete_tail(db):
    db.execute("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")


def tamper_reorder(db):
    """Rows 2 and 3 trade places (their seq numbers are swapped)."""
    db.execute("UPDATE audit_log SET seq = -1 WHERE seq = 2")
    db.execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
    db.execute("UPDATE audit_log SET seq = 3 WHERE seq = -1")


TAMPERING = {
    "edit": (tamper_edit, {"edited"}),
    "edit-rehash": (tamper_edit_rehash, {"edited"}),
    "delete-middle": (tamper_delete_middle, {"deleted"}),
    "delete-first": (tamper_delete_first, {"deleted"}),
    "delete-tail": (tamper_delete_tail, {"deleted"}),
    "reorder": (tamper_reorder, {"reordered", "edited"}),
}


def test_untampered_chain_verifies(make_clusters, make_kgate, state_location, request):
    kg = make_kgate(make_clusters(), state_path=state_location)
    entries = make_history(kg)
    cli = kg.cli("audit", "verify")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "intact" in cli.stdout, cli.stdout
    api = kg.http("GET", "/v1/audit/verify")
    assert api.status == 200 and api.json["intact"] is True, api
    assert api.json["last_seq"] == len(entries) == entries[-1]["seq"], (api, entries)
    assert kg.stop() == 0
    assert independent_verify(kg.state_path,
                              pg_server=pg_server_for(state_location, request)) is None


def test_chain_verifies_with_a_standard_json_serializer(make_clusters, make_kgate):
    """docs/api.md promises independent verification: hashing [seq, ts, type, details, prev_hash]
    serialized compactly with sorted keys. A verifier that re-serializes the details with a
    standard JSON serializer must get kgate's hashes, including for entries with real numbers
    (switch.completed's duration_ms)."""
    kg = make_kgate(make_clusters())
    make_history(kg)
    assert kg.stop() == 0
    problem = independent_verify(kg.state_path, stored_text=False)
    assert problem is None, (
        f"{problem}: kgate writes real numbers with 17 significant digits (jansson's default), "
        f"a standard serializer writes the shortest form (0.423 for 0.42299999999999999), so the "
        f"documented chain cannot be recomputed by an independent verifier")


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_is_detected(kind, make_clusters, make_kgate, state_location, request):
    tamper, reasons = TAMPERING[kind]
    kg = make_kgate(make_clusters(), state_path=state_location)
    make_history(kg)
    assert kg.stop() == 0

    pg_server = pg_server_for(state_location, request)
    db = connect(kg.state_path, pg_server)
    with db:
        tamper(db)
    db.close()
    problem = independent_verify(kg.state_path, pg_server=pg_server)
    assert problem, "the tampering did not break the documented chain (test bug)"

    kg.start()
    cli = kg.cli("audit", "verify")
    assert cli.returncode == 1, (cli.returncode, cli.stdout, cli.stderr)
    assert "BROKEN" in cli.stdout + cli.stderr, cli.stdout + cli.stderr
    api = kg.http("GET", "/v1/audit/verify")
    assert api.status == 200, api
    assert api.json["intact"] is False, api
    assert api.json["reason"] in reasons, api
    print(f"{kind}: {api.json['reason']}: {api.json.get('message')} (independent check: "
          f"{problem})")
    # kgate keeps serving its clients and its API; the broken chain is reported, not fatal.
    assert kg.vcluster_status("default")["active"] == "west"
    assert kg.cli("audit", "verify", "--json").returncode == 1
