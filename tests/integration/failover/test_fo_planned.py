"""Zero-loss planned switchover (issue 10, item 6): `failover --planned` holds new Produce
requests at kgate, waits until the embedded mirror has copied everything to the target, switches,
and sends the held requests to the new side itself; producers see no error, and every record
they were told was written is on the final active side exactly once. When the mirror cannot catch
up within the hold bound the switch is aborted and the held requests go to the old side."""

import json
import threading

import pytest

import fohelpers
from fohelpers import ClientRun, DevCluster, metric

TOPIC = "fo-plan"
TOPICS = {TOPIC: 3}
WAIT = 90


@pytest.fixture
def clusters(make_clusters):
    return make_clusters(topics=TOPICS)


def start_planned(clusters, make_kgate, topics="^fo-plan$"):
    kg = make_kgate(clusters, start=False)
    kg.add_vcluster_keys(f'mirror: {{ topics: "{topics}", interval_ms: 200 }}')
    return kg.start()


def planned(kg, action="failover", **body):
    reply = kg.http("POST", f"/v1/vclusters/default/{action}",
                    {"planned": True, "reason": "planned switch test", **body}, timeout=120)
    return reply


def producers(kg, tmp_path):
    """4 producers, ~1,000 records/s together: librdkafka with and without retries, and
    kafka-python (its defaults: retries=0, acks=1). librdkafka batches for 100 ms: a mock
    cluster answers one batch per Fetch, so the embedded mirror reads one batch per round trip,
    and a record per batch at this rate would outrun it (docs/runbook.md)."""
    bs = kg.bootstrap("default")
    batched = {"linger.ms": 100}
    no_retry = {**batched, "message.send.max.retries": 0, "enable.idempotence": False}
    runs = [ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=3, producer_config=no_retry,
                      label="confluent-noretry", consume=False),
            ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=3, producer_config=batched,
                      label="confluent", consume=False),
            ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=3, producer_config=no_retry,
                      label="confluent-noretry-2", consume=False),
            ClientRun("kafka-python", bs, TOPIC, tmp_path, interval_ms=20, consume=False)]
    for r in runs:
        r.start()
    return runs


def wait_acks(runs, more):
    """Each run gets MORE acknowledgements than it has now."""
    fohelpers.wait_acks(runs, more, WAIT)


def second_switch_while_holding(kg, holder):
    """A failback asked for while the planned switch of thread HOLDER holds: its 409 reply, or
    None when HOLDER ended first. The admin API's threads each serve their own connections: one
    may wait behind the holding switch, so a try that takes long is dropped and made again (a
    failback arriving after the hold is harmless: east is active then)."""
    while holder.is_alive():
        try:
            r = kg.http("POST", "/v1/vclusters/default/failback", {"reason": "second"},
                        timeout=1)
        except OSError:
            continue
        if r.status == 409 and "in progress" in r.json.get("error", ""):
            return r
    return None


def finish(runs, cluster):
    """The runs go on producing (healthy), stop, and saw no delivery error; every record they
    were told was written is on CLUSTER exactly once."""
    fohelpers.finish_runs(runs, cluster, TOPIC, WAIT)


@pytest.mark.guard(600)
def test_planned_failover_and_failback_lose_nothing_and_give_no_error(clusters, make_kgate,
                                                                     tmp_path):
    east, west = clusters["east"], clusters["west"]
    kg = start_planned(clusters, make_kgate)
    runs = producers(kg, tmp_path)
    try:
        wait_acks(runs, 200)
        reply = planned(kg, "failover")
        assert reply.status == 200 and reply.json["changed"], reply
        report = reply.json["planned"]
        assert report["outcome"] == "switched" and report["held_requests_went_to"] == "new side"
        assert report["release_failed"] == 0, report
        assert reply.json["to"] == "west"
        wait_acks(runs, 200)

        # the CLI, as an operator types it
        back = kg.cli("failback", "default", "--planned", "--hold-max", "30s", "--json",
                      timeout=120)
        assert back.returncode == 0, back
        result = json.loads(back.stdout)
        assert result["changed"] and result["to"] == "east", result
        # A hold lasts tens of milliseconds (until the mirror's lag is 0): one switch may find
        # no Produce request to hold; over the two, the producers' requests were held and relayed.
        held = report["held_requests"] + result["planned"]["held_requests"]
        released = report["released_to_new_side"] + result["planned"]["released_to_new_side"]
        assert held > 0 and released > 0, (report, result["planned"])
        assert result["planned"]["release_failed"] == 0, result["planned"]
        # east is active again: what was written on west came over with the mirror's last pass
        finish(runs, east)
    finally:
        for r in runs:
            r.stop()

    entries = [e for e in kg.audit_entries() if e["type"] == "switch.completed"]
    assert [e["details"]["planned"]["outcome"] for e in entries[-2:]] == ["switched"] * 2
    samples = kg.metrics()
    assert metric(samples, "kgate_planned_switches_total", vcluster="default",
                  result="completed") == 2
    assert metric(samples, "kgate_planned_held_requests_total", vcluster="default") > 0


@pytest.mark.guard(600)
def test_planned_switch_aborts_when_the_mirror_cannot_catch_up(tmp_path, make_kgate):
    # east has a mirrored topic west lacks: the mirror cannot copy it, its lag never reaches 0
    east = DevCluster("east", "2.12", {**TOPICS, "fo-plan-east-only": 1}, tmp_path)
    west = DevCluster("west", "2.12", TOPICS, tmp_path)
    try:
        clusters = {"east": east, "west": west}
        east.fill("fo-plan-east-only", 5)
        kg = start_planned(clusters, make_kgate, topics="^fo-plan")
        runs = producers(kg, tmp_path)
        try:
            wait_acks(runs, 100)
            result = {}
            t = threading.Thread(target=lambda: result.update(
                reply=planned(kg, "failover", hold_max_ms=3000)))
            t.start()
            # A second switch while the first holds is refused, naming the one in progress.
            second = second_switch_while_holding(kg, t)
            t.join(120)
            assert second is not None, result
            assert "planned switch of 'default' from east to west" in second.json["error"], \
                second.json

            reply = result["reply"]
            assert reply.status == 409, reply
            assert "replication lag" in reply.json["error"], reply.json
            report = reply.json["planned"]
            assert report["outcome"] == "aborted" and report["held_requests"] > 0, report
            assert report["held_requests_went_to"] == "old side"
            assert kg.vcluster_status()["active"] == "east"
            finish(runs, east)
        finally:
            for r in runs:
                r.stop()
        aborted = [e for e in kg.audit_entries() if e["type"] == "switch.planned_aborted"]
        assert aborted and aborted[-1]["details"]["planned"]["reason"].startswith(
            "replication lag"), aborted
        assert metric(kg.metrics(), "kgate_planned_switches_total", vcluster="default",
                      result="aborted") == 1
    finally:
        east.stop()
        west.stop()


@pytest.mark.guard(300)
def test_planned_switch_bad_input(clusters, make_kgate):
    kg = make_kgate(clusters, vclusters=(("default", "east", "west"), ("solo", "east", None)))
    cases = [
        ("default", {"planned": True}, 400, "embedded mirror"),
        ("solo", {"planned": True}, 400, "secondary"),
        ("default", {"hold_max_ms": 1000}, 400, "planned switch only"),
        ("default", {"planned": True, "hold_max_ms": 0}, 400, "1..600000"),
        ("default", {"planned": True, "force": True}, 400, "do not go together"),
        ("default", {"planned": "yes"}, 400, "planned"),
    ]
    for vc, body, status, text in cases:
        r = kg.http("POST", f"/v1/vclusters/{vc}/failover", body)
        assert r.status == status and text in r.json["error"], (body, r.status, r.json)
    assert kg.vcluster_status()["active"] == "east"
    done = kg.cli("failover", "default", "--hold-max", "5s")
    assert done.returncode != 0 and "--planned" in done.stderr, done


@pytest.mark.guard(300)
def test_a_drill_with_a_planned_failover_loses_nothing(make_clusters, make_kgate, tmp_path):
    from test_drill import TOPIC as DRILL_TOPIC, drill_records, write_drill
    clusters = make_clusters()
    kg = make_kgate(clusters, start=False)
    kg.add_vcluster_keys(f'mirror: {{ topics: "^{DRILL_TOPIC}$", interval_ms: 200 }}')
    kg.start()
    steps = [{"action": "failover", "to": "west", "planned": True, "reason": "planned drill"}]
    run = kg.cli("drill", "run", write_drill(tmp_path, kg, steps=steps), "--json", timeout=200)
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    result = json.loads(run.stdout)
    step = result["steps"][0]
    assert step["status"] == 200 and step["planned"] is True, step
    assert step["result"]["planned"]["outcome"] == "switched", step["result"]
    data = result["data"]
    assert data["lost"] == 0 and result["outcome"] == "passed", (data, result["outcome"])
    # checked against what the test reads itself: every acknowledged record is on west
    west = drill_records(clusters["west"], result["run"])
    assert data["acked"] > 0 and data["found_on_active_side"] == data["acked"] == len(west)
    assert all(c["errors"] == 0 for c in result["clients"]), result["clients"]


@pytest.mark.guard(300)
def test_the_old_side_dying_during_the_hold_aborts_the_planned_switch(tmp_path, make_kgate):
    # east has a topic the mirror cannot copy: the hold lasts; east then hangs during it
    east = DevCluster("east", "2.12", {**TOPICS, "fo-plan-east-only": 1}, tmp_path)
    west = DevCluster("west", "2.12", TOPICS, tmp_path)
    try:
        kg = start_planned({"east": east, "west": west}, make_kgate, topics="^fo-plan")
        result = {}
        t = threading.Thread(target=lambda: result.update(
            reply=planned(kg, "failover", hold_max_ms=60000)))
        t.start()
        assert second_switch_while_holding(kg, t) is not None, result
        east.freeze()
        try:
            t.join(120)
            reply = result["reply"]
            assert reply.status == 409, reply
            assert "cannot read" in reply.json["error"], reply.json
            assert reply.json["planned"]["outcome"] == "aborted"
            assert kg.vcluster_status()["active"] == "east"
            # what the runbook says to do then: an unplanned switch, which never waits for east
            kg.wait_cluster_up("east", False)
            r = kg.http("POST", "/v1/vclusters/default/failover", {"reason": "east hangs"})
            assert r.status == 200 and r.json["changed"] and r.json["to"] == "west", r
        finally:
            east.thaw()
    finally:
        east.stop()
        west.stop()


@pytest.mark.guard(300)
def test_an_idempotent_producer_across_planned_switches(clusters, make_kgate, tmp_path):
    """What the runbook claims for idempotent producers, on the dev clusters: librdkafka's
    batches are relayed with their producer id and sequence numbers, the new side takes them,
    and the producer sees no error, nothing lost or written twice."""
    kg = start_planned(clusters, make_kgate)
    run = ClientRun("confluent", kg.bootstrap("default"), TOPIC, tmp_path, interval_ms=2,
                    producer_config={"linger.ms": 5, "enable.idempotence": True},
                    label="idempotent", consume=False).start()
    try:
        wait_acks([run], 200)
        held = 0
        for i in range(4):  # east -> west -> east ...: east is active again at the end
            reply = planned(kg, "failover" if i % 2 == 0 else "failback")
            assert reply.status == 200 and reply.json["changed"], reply
            held += reply.json["planned"]["held_requests"]
            wait_acks([run], 100)
        assert held > 0, "no request was held: the relay of an idempotent batch was not tried"
        finish([run], clusters["east"])
    finally:
        run.stop()
