"""A planned switchover in a fleet (issue 10, item 6; docs/runbook.md "Planned switchover in a
fleet"): kgate instances sharing a PostgreSQL state all hold their producers, the switch happens
once, and every instance relays its held requests to the new side: producers spread over the
instances see no error and every record they were told was written is on the final side
exactly once. An abort sends every instance's held requests to the old side; a coordinator that
dies during the hold leaves the others to abort it themselves: the vcluster stays on exactly one
side fleet-wide."""

import threading

import pytest
from confluent_kafka import Producer

from fohelpers import ClientRun, DevCluster, metric, wait_for
from test_fo_planned import finish, wait_acks

TOPIC = "fo-plan"
TOPICS = {TOPIC: 3}
WAIT = 90


def start_fleet(clusters, make_kgate, pg_url, names, topics="^fo-plan$"):
    kgs = []
    for name in names:
        kg = make_kgate(clusters, start=False, state_path=pg_url,
                        extra_lines=[f"instance: {{ name: {name}, lease_ms: 1500 }}"])
        kg.add_vcluster_keys(f'mirror: {{ topics: "{topics}", interval_ms: 200 }}')
        kg.instance = name
        kgs.append(kg.start())
    wait_for(lambda: sum(mirror_owner(kg) for kg in kgs) == 1, WAIT,
             what="exactly one instance running the mirror")
    return kgs


@pytest.fixture
def lagging(tmp_path):
    """east and west, east with a mirrored topic west lacks: the mirror cannot copy it, its
    lag never reaches 0 and a planned switch holds until its bound."""
    east = DevCluster("east", "2.12", {**TOPICS, "fo-plan-east-only": 1}, tmp_path)
    west = DevCluster("west", "2.12", TOPICS, tmp_path)
    try:
        east.fill("fo-plan-east-only", 5)
        yield {"east": east, "west": west}
    finally:
        east.stop()
        west.stop()


def db(pg_server, url, sql):
    return pg_server.sql(sql, db=url.rsplit("/", 1)[1].split("?")[0])


def mirror_owner(kg):
    return metric(kg.metrics(), "kgate_mirror_active") == 1


def planned(kg, action="failover", **body):
    return kg.http("POST", f"/v1/vclusters/default/{action}",
                   {"planned": True, "reason": "fleet planned switch test", **body}, timeout=120)


def producers(placement, tmp_path):
    """librdkafka producers, ~1,000 records/s together, on the instances of PLACEMENT (a list
    of (kgate, label, retries)); with retries=0 a client error would be a lost record."""
    runs = []
    for kg, label, retries in placement:
        config = {"linger.ms": 100}
        if not retries:
            config.update({"message.send.max.retries": 0, "enable.idempotence": False})
        runs.append(ClientRun("confluent", kg.bootstrap("default"), TOPIC, tmp_path,
                              interval_ms=3, producer_config=config, label=label,
                              consume=False))
    for r in runs:
        r.start()
    return runs


def killed_call(kg):
    """A planned failover through KG, which the test kills during the hold: no answer."""
    try:
        planned(kg, "failover", hold_max_ms=3000)
    except OSError:
        pass


def create_on_first_produce(cluster, topic):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "log_level": 3})
    p.produce(topic, value=b"created")
    assert p.flush(30) == 0


def held_total(kg):
    return metric(kg.metrics(), "kgate_planned_held_requests_total", vcluster="default") or 0


def actives(kgs):
    return {kg.vcluster_status()["active"] for kg in kgs}


def check_switched(reply, kgs, to):
    """A planned switch that happened: every instance held and released to the new side."""
    assert reply.status == 200 and reply.json["changed"], reply
    assert reply.json["to"] == to, reply.json
    report = reply.json["planned"]
    assert report["outcome"] == "switched" and report["held_requests_went_to"] == "new side"
    assert report["release_failed"] == 0, report
    instances = report["instances"]
    assert set(instances) == {kg.instance for kg in kgs}, report
    assert {i["released_to"] for i in instances.values()} == {"new side"}, report
    wait_for(lambda: actives(kgs) == {to}, WAIT, what=f"every instance on {to}")
    return report


@pytest.mark.guard(900)
def test_fleet_planned_failover_and_failback_lose_nothing_on_any_instance(
        make_clusters, make_kgate, pg_url, tmp_path):
    clusters = make_clusters(topics=TOPICS)
    kgs = start_fleet(clusters, make_kgate, pg_url, ["p1", "p2"])
    owner = next(kg for kg in kgs if mirror_owner(kg))
    coordinator = next(kg for kg in kgs if kg is not owner)  # the mirror runs elsewhere
    p1, p2 = kgs
    runs = producers([(p1, "p1-noretry", False), (p2, "p2-noretry", False), (p2, "p2", True)],
                     tmp_path)
    hold_ms = []
    try:
        wait_acks(runs, 200)
        # Failover and failback through the instance that does not run the mirror, until each
        # instance held Produce requests in some switch (a hold lasts tens of ms: one switch
        # may find nothing to hold on an instance).
        for attempt in range(6):
            reply = planned(coordinator, "failover")
            report = check_switched(reply, kgs, "west")
            hold_ms.append(report["hold_ms"])
            wait_acks(runs, 100)
            back = planned(coordinator, "failback")
            report = check_switched(back, kgs, "east")
            hold_ms.append(report["hold_ms"])
            wait_acks(runs, 100)
            if all(held_total(kg) > 0 for kg in kgs):
                break
        assert all(held_total(kg) > 0 for kg in kgs), [held_total(kg) for kg in kgs]
        finish(runs, clusters["east"])
    finally:
        for r in runs:
            r.stop()
    print(f"fleet planned switch hold_ms: {sorted(hold_ms)}")
    audit = coordinator.audit_entries()
    entries = [e for e in audit if e["type"] == "switch.completed"]
    assert all(e["details"]["planned"]["outcome"] == "switched" for e in entries), entries
    # What each instance held and where it went, one entry per switch.
    released = [e["details"] for e in audit if e["type"] == "switch.planned_released"]
    assert len(released) == len(hold_ms), released
    for d in released:
        assert set(d["instances"]) == {"p1", "p2"}, d
        assert {i["released_to"] for i in d["instances"].values()} == {"new side"}, d
    assert metric(coordinator.metrics(), "kgate_planned_switches_total", vcluster="default",
                  result="completed") == len(hold_ms)


def planned_in_background(coordinator, other, hold_max_ms):
    """A planned failover through COORDINATOR on a thread of its own, once OTHER holds for it:
    the thread, and the dict its reply goes to ("reply")."""
    result = {}
    t = threading.Thread(target=lambda: result.update(
        reply=planned(coordinator, "failover", hold_max_ms=hold_max_ms)))
    t.start()
    wait_for(lambda: "holding Produce requests for planned switch" in other.log(), WAIT,
             what="the other instance to hold")
    return t, result


@pytest.mark.guard(900)
def test_fleet_planned_abort_releases_every_instance_to_the_old_side(
        lagging, make_kgate, pg_url, tmp_path):
    east = lagging["east"]
    p1, p2 = start_fleet(lagging, make_kgate, pg_url, ["p1", "p2"], topics="^fo-plan")
    runs = producers([(p1, "p1-noretry", False), (p2, "p2-noretry", False)], tmp_path)
    try:
        wait_acks(runs, 100)
        t, result = planned_in_background(p1, p2, hold_max_ms=4000)
        # A second switch during the hold is refused on the OTHER instance too.
        # Its status says it holds, and for whom.
        assert "coordinated by instance p1" in p2.vcluster_status()["planned_switch"]
        second = p2.http("POST", "/v1/vclusters/default/failback", {"reason": "second"})
        third = p2.http("POST", "/v1/vclusters/default/failover",
                        {"planned": True, "reason": "third"})
        t.join(120)
        assert second.status == 409 and "in progress" in second.json["error"], second
        assert "coordinated by instance p1" in second.json["error"], second.json
        assert third.status == 409 and "in progress" in third.json["error"], third

        reply = result["reply"]
        assert reply.status == 409, reply
        assert "replication lag" in reply.json["error"], reply.json
        report = reply.json["planned"]
        assert report["outcome"] == "aborted" and report["held_requests_went_to"] == "old side"
        assert set(report["instances"]) == {"p1", "p2"}, report
        assert {i["released_to"] for i in report["instances"].values()} == {"old side"}, report
        assert actives([p1, p2]) == {"east"}
        assert not any("planned_switch" in kg.vcluster_status() for kg in (p1, p2))
        finish(runs, east)
    finally:
        for r in runs:
            r.stop()
    assert all(held_total(kg) > 0 for kg in (p1, p2)), [held_total(kg) for kg in (p1, p2)]
    assert "go to the new side" not in p2.log()


@pytest.mark.guard(900)
def test_fleet_planned_hold_an_instance_does_not_ack_aborts_naming_it(
        make_clusters, make_kgate, pg_url, pg_server, tmp_path):
    """An instance that does not acknowledge (its row says live, it never holds: a stand-in
    written by the test) makes the coordinator abort with 409 naming it; nothing switched."""
    clusters = make_clusters(topics=TOPICS)
    p1, p2 = start_fleet(clusters, make_kgate, pg_url, ["p1", "p2"])
    db(pg_server, pg_url, "INSERT INTO kg_instances (name, version, started_at, lease_until, "
         "renewed_at) VALUES ('ghost', 'test', now(), now() + interval '1 hour', now())")
    reply = planned(p1, "failover", hold_max_ms=1500)
    assert reply.status == 409, reply
    assert "ghost" in reply.json["error"] and "did not acknowledge" in reply.json["error"], \
        reply.json
    assert actives([p1, p2]) == {"east"}
    db(pg_server, pg_url, "DELETE FROM kg_instances WHERE name = 'ghost'")
    reply = planned(p1, "failover")
    check_switched(reply, [p1, p2], "west")


@pytest.mark.guard(900)
def test_fleet_planned_coordinator_killed_during_the_hold(lagging, make_kgate, pg_url,
                                                          pg_server, tmp_path):
    """The coordinator dies during the hold: both other instances see no decision after the
    deadline, exactly one of them marks the hold aborted (the row lock), and both release to
    the old side; the vcluster is on one side fleet-wide."""
    p1, p2, p3 = start_fleet(lagging, make_kgate, pg_url, ["p1", "p2", "p3"], topics="^fo-plan")
    runs = producers([(p2, "p2-noretry", False), (p3, "p3-noretry", False)], tmp_path)
    try:
        wait_acks(runs, 100)
        t = threading.Thread(target=lambda: killed_call(p1))
        t.daemon = True
        t.start()
        for kg in (p2, p3):
            wait_for(lambda kg=kg: "holding Produce requests for planned switch" in kg.log(),
                     WAIT, what=f"{kg.instance} to hold")
        p1.kill9()
        # Each decides itself once the deadline (+ a margin) passed, and goes on on east.
        for kg in (p2, p3):
            wait_for(lambda kg=kg: "ended (aborted)" in kg.log(), WAIT,
                     what=f"{kg.instance} to end the dead coordinator's hold")
        assert sum("aborted it" in kg.log() for kg in (p2, p3)) == 1, \
            [kg.log()[-2000:] for kg in (p2, p3)]
        assert not any("ended (switched)" in kg.log() for kg in (p2, p3))
        assert actives([p2, p3]) == {"east"}
        rows = db(pg_server, pg_url, "SELECT active FROM vcluster_state WHERE name = "
                  "'default' UNION ALL SELECT state FROM planned_holds")
        assert [r[0] for r in rows] in (["aborted"], ["east", "aborted"]), rows
        finish(runs, lagging["east"])
    finally:
        for r in runs:
            r.stop()


@pytest.mark.guard(900)
def test_fleet_planned_switch_refused_once_an_instance_gave_up(lagging, make_kgate, pg_url,
                                                               pg_server, tmp_path):
    """An instance that gave up on a hold (here: the test marks the row aborted, as an instance
    does when it sees no decision in time) has released to the old side: when the mirror then
    catches up, the coordinator's switch is refused in its own transaction, and it releases to
    the old side too. No instance ever relays to the new side."""
    east, west = lagging["east"], lagging["west"]
    p1, p2 = start_fleet(lagging, make_kgate, pg_url, ["p1", "p2"], topics="^fo-plan")
    runs = producers([(p1, "p1-noretry", False), (p2, "p2-noretry", False)], tmp_path)
    try:
        wait_acks(runs, 100)
        t, result = planned_in_background(p1, p2, hold_max_ms=60000)
        db(pg_server, pg_url, "UPDATE planned_holds SET state = 'aborted', reason = 'test: an "
           "instance gave up' WHERE state = 'holding'; SELECT pg_notify('kgate_planned', "
           "'default')")
        wait_for(lambda: "ended (aborted)" in p2.log(), WAIT, what="p2 to follow the row")
        # The topic the mirror could not copy appears on west (the mock creates it on a first
        # produce): the lag reaches 0 and the coordinator goes on to switch.
        create_on_first_produce(west, "fo-plan-east-only")
        t.join(120)
        reply = result["reply"]
        assert reply.status == 409, reply
        assert "the hold is aborted: test: an instance gave up" in reply.json["error"], reply.json
        assert reply.json["planned"]["held_requests_went_to"] == "old side", reply.json
        assert actives([p1, p2]) == {"east"}
        assert "ended (switched)" not in p2.log()
        finish(runs, east)
    finally:
        for r in runs:
            r.stop()


@pytest.mark.guard(600)
def test_fleet_any_switch_refused_in_its_transaction_while_a_hold_is_holding(
        make_clusters, make_kgate, pg_url, pg_server):
    """A hold row that is holding (written by the test from a side the instances are not on,
    so none of them holds for it: only the store knows) refuses a plain switch and a planned
    one on every instance, naming the coordinator; once it is over they work."""
    clusters = make_clusters(topics=TOPICS)
    kgs = start_fleet(clusters, make_kgate, pg_url, ["p1", "p2"])
    db(pg_server, pg_url, "INSERT INTO planned_holds (vcluster, hold_id, from_cluster, "
       "to_cluster, from_epoch, coordinator, coordinator_token, state, deadline, updated_at) "
       "VALUES ('default', 999, 'west', 'east', 0, 'elsewhere', 'x', 'holding', "
       "now() + interval '1 hour', now())")
    for kg in kgs:
        wait_for(lambda kg=kg: "does not match this instance's route" in kg.log(), WAIT,
                 what=f"{kg.instance} to see the hold and not hold for it")
        for body in ({"reason": "plain"}, {"reason": "planned", "planned": True}):
            r = kg.http("POST", "/v1/vclusters/default/failover", body, timeout=60)
            assert r.status == 409, (kg.instance, body, r)
            assert "another switch is in progress" in r.json["error"], r.json
            assert "coordinated by instance elsewhere" in r.json["error"], r.json
    assert actives(kgs) == {"east"}
    refused = [e for e in kgs[0].audit_entries() if e["type"] == "switch.refused"]
    assert any("coordinated by instance elsewhere" in e["details"]["error"] for e in refused)
    db(pg_server, pg_url, "UPDATE planned_holds SET state = 'aborted'")
    r = kgs[1].http("POST", "/v1/vclusters/default/failover", {"reason": "after"})
    assert r.status == 200 and r.json["changed"], r
    wait_for(lambda: actives(kgs) == {"west"}, WAIT, what="every instance on west")
