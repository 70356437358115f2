"""The admin API and the CLI around the switch: bearer token (401), unknown vcluster (404), bad
requests (400), a target cluster that is down (409 unless force), and concurrent failover calls
(exactly one switch)."""

import threading

import pytest

TOKEN = "failover-test-token-7d1f"
PROTECTED = [("GET", "/v1/status", None), ("GET", "/v1/audit", None),
             ("GET", "/v1/audit/verify", None), ("GET", "/metrics", None),
             ("POST", "/v1/vclusters/default/failover", {"to": "west", "reason": "no token"}),
             ("POST", "/v1/vclusters/default/failback", {"reason": "no token"})]


def assert_json_error(reply, status):
    assert reply.status == status, reply
    assert isinstance(reply.json, dict) and reply.json.get("error"), reply


def assert_unchanged(kg, epoch=0, active="east"):
    vc = kg.vcluster_status("default")
    assert (vc["active"], vc["epoch"]) == (active, epoch), vc


def switch_entries(kg):
    return [e for e in kg.audit_entries() if e["type"] == "switch"]


def test_token_required(make_clusters, make_kgate):
    kg = make_kgate(make_clusters(), token=TOKEN)
    for method, path, body in PROTECTED:
        for token in (None, "wrong-token", TOKEN + "x", TOKEN[:-1]):
            reply = kg.http(method, path, body, token=token)
            assert_json_error(reply, 401)
            assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer"), reply.headers
        basic = kg.http(method, path, body, token=None,
                        headers={"Authorization": "Basic " + TOKEN})
        assert_json_error(basic, 401)
    for path in ("/healthz", "/readyz"):
        assert kg.http("GET", path, token=None).status == 200
    assert_unchanged(kg)

    # The CLI: the token from the config works, a wrong one is refused.
    ok = kg.cli("status")
    assert ok.returncode == 0, ok.stderr
    assert "default" in ok.stdout and "east" in ok.stdout, ok.stdout
    bad = kg.cli("status", "--token", "wrong-token")
    assert bad.returncode == 1, (bad.returncode, bad.stdout, bad.stderr)
    assert "401" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    bad = kg.cli("failover", "default", "--to", "west", "--token", "wrong-token")
    assert bad.returncode == 1 and "401" in bad.stdout + bad.stderr, bad
    assert_unchanged(kg)
    assert switch_entries(kg) == []
    assert kg.http("GET", "/v1/status").status == 200


def test_unknown_vcluster_and_bad_requests(make_clusters, make_kgate):
    kg = make_kgate(make_clusters(), token=TOKEN)
    for action in ("failover", "failback"):
        assert_json_error(kg.http("POST", f"/v1/vclusters/nope/{action}", {"reason": "x"}), 404)
    cli = kg.cli("failover", "nope", "--to", "west")
    assert cli.returncode == 1 and "404" in cli.stdout + cli.stderr, cli

    bad_bodies = ["{", "not json", "[]", '"west"', '{"to": 5}', '{"force": "yes"}',
                  '{"reason": ["a"]}', '{"bogus": 1}', '{"to": "west", "to": "east"}',
                  '{"reason": "' + "r" * 2000 + '"}']
    for body in bad_bodies:
        reply = kg.http("POST", "/v1/vclusters/default/failover", body)
        assert_json_error(reply, 400)
    assert_json_error(kg.http("POST", "/v1/vclusters/default/failback", {"to": "west"}), 400)
    assert_json_error(kg.http("POST", "/v1/vclusters/default/failover", "{", token=None), 401)
    assert_unchanged(kg)
    assert switch_entries(kg) == []

    # After all that, a good request still switches.
    reply, _, _ = kg.switch("default", to="west", reason="good request")
    assert reply.status == 200 and reply.json["changed"] is True, reply


@pytest.mark.guard(120)
def test_failover_to_a_down_cluster_is_refused_unless_forced(make_clusters, make_kgate):
    clusters = make_clusters()
    kg = make_kgate(clusters, token=TOKEN)
    kg.wait_cluster_up("west", True)
    assert clusters["west"].stop() == 0
    kg.wait_cluster_up("west", False)
    assert kg.cluster_status("west")["last_error"], kg.cluster_status("west")

    reply, _, _ = kg.switch("default", to="west", reason="west is down")
    assert_json_error(reply, 409)
    assert "down" in reply.json["error"], reply
    assert_unchanged(kg)
    refused = [e for e in kg.audit_entries() if e["type"] == "switch.refused"]
    assert len(refused) == 1 and refused[0]["details"]["to"] == "west", refused
    cli = kg.cli("failover", "default", "--to", "west", "--reason", "cli, no force")
    assert cli.returncode == 1 and "down" in cli.stdout + cli.stderr, cli
    assert_unchanged(kg)

    forced = kg.cli("failover", "default", "--to", "west", "--reason", "forced", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "east -> west" in forced.stdout, forced.stdout
    assert_unchanged(kg, epoch=1, active="west")
    entries = switch_entries(kg)
    assert len(entries) == 1 and entries[0]["details"]["forced"] is True, entries
    assert kg.http("GET", "/readyz", token=None).status == 503  # active side down: not ready


def test_concurrent_failovers_switch_once(make_clusters, make_kgate):
    kg = make_kgate(make_clusters(), token=TOKEN)
    before = len(kg.audit_entries())
    n = 10
    barrier = threading.Barrier(n)
    replies = [None] * n

    def call(i):
        barrier.wait(10)
        replies[i] = kg.http("POST", "/v1/vclusters/default/failover",
                             {"to": "west", "reason": f"racer {i}"})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None and r.status == 200 for r in replies), replies
    changed = [r.json for r in replies if r.json["changed"] is True]
    assert len(changed) == 1, replies
    assert changed[0]["epoch"] == 1, changed
    others = [r.json for r in replies if r.json["changed"] is False]
    assert len(others) == n - 1 and all(o["active"] == "west" and o["epoch"] == 1
                                        for o in others), others
    new = kg.audit_entries()[before:]
    assert [e["type"] for e in new] == ["switch", "switch.completed"], new
    assert new[0]["details"]["reason"] == changed[0]["reason"], (new, changed)
    assert_unchanged(kg, epoch=1, active="west")

    # Concurrent failbacks: the same, back to east.
    barrier = threading.Barrier(n)

    def call_back(i):
        barrier.wait(10)
        replies[i] = kg.http("POST", "/v1/vclusters/default/failback", {"reason": f"back {i}"})

    threads = [threading.Thread(target=call_back, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(1 for r in replies if r.status == 200 and r.json["changed"] is True) == 1, replies
    assert_unchanged(kg, epoch=2, active="east")
    assert len(switch_entries(kg)) == 2
