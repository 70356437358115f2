"""A planned switchover (issue 10, item 6) is refused with PostgreSQL state: every instance of a
fleet would have to hold its producers, which kgate does not do; the refusal names why, and
nothing is switched (the plain switch still works)."""

import pytest


@pytest.mark.guard(180)
def test_a_fleet_refuses_a_planned_switch_and_says_why(make_clusters, make_kgate, pg_url):
    clusters = make_clusters(topics={"fo-mir": 2})
    kg = make_kgate(clusters, start=False, state_path=pg_url,
                    extra_lines=["instance: { name: p1, lease_ms: 1500 }"])
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 100 }')
    kg.start()
    r = kg.http("POST", "/v1/vclusters/default/failover", {"planned": True, "reason": "fleet"})
    assert r.status == 409, r
    assert "PostgreSQL state" in r.json["error"] and "without planned" in r.json["error"], r.json
    assert kg.vcluster_status()["active"] == "east"
    r = kg.http("POST", "/v1/vclusters/default/failover", {"reason": "fleet, unplanned"})
    assert r.status == 200 and r.json["changed"] and r.json["to"] == "west", r
