"""The embedded mirror in a fleet (a PostgreSQL state shared by instances; issue 10, item 5):
exactly one instance copies, the holder of the mirror's advisory lock, with its positions and
offset syncs in the shared store; when it dies another takes the lock over and continues where
it stopped: no record copied twice, none skipped. The mirror's own tests
(tests/integration/failover/test_fo_mirror.py) show what it copies."""

import pytest
from confluent_kafka import Producer

from fohelpers import metric, wait_for

PER_PARTITION = 20
WAIT = 60


def produce(cluster, tag, count=PER_PARTITION):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "linger.ms": 5, "log_level": 3})
    sent = []
    for part in range(2):
        for i in range(count):
            value = f"{tag}-{part}-{i}"
            p.produce("fo-mir", key=f"k{i}", value=value, partition=part)
            sent.append(value)
    assert p.flush(30) == 0
    return sent


def active(kg):
    return metric(kg.metrics(), "kgate_mirror_active") == 1


@pytest.mark.guard(240)
def test_one_instance_of_a_fleet_mirrors_and_another_takes_over(make_clusters, make_kgate,
                                                                pg_url):
    clusters = make_clusters(topics={"fo-mir": 2})
    east, west = clusters["east"], clusters["west"]
    kgs = []
    for name in ("m1", "m2"):
        kg = make_kgate(clusters, start=False, state_path=pg_url,
                        extra_lines=[f"instance: {{ name: {name}, lease_ms: 1500 }}"])
        kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 100 }')
        kgs.append(kg.start())
    wait_for(lambda: sorted(active(kg) for kg in kgs) == [False, True], WAIT,
             what="exactly one instance running the mirror")
    first = next(kg for kg in kgs if active(kg))
    other = next(kg for kg in kgs if kg is not first)

    sent = produce(east, "a")
    wait_for(lambda: len(west.read_all("fo-mir")) >= len(sent), WAIT, what="the first copies")
    assert sorted(v for _, _, v in west.read_all("fo-mir")) == sorted(sent)
    # The other instance reads the positions the first one stored; it does not copy itself.
    wait_for(lambda: other.http("GET", "/v1/vclusters/default/mirror").json.get("total") == 0,
             WAIT, what="the other instance to see lag 0 in the shared positions")
    r = other.http("GET", "/v1/vclusters/default/mirror")
    assert r.json["mirroring_here"] is False, r.json
    assert other.http("POST", "/v1/vclusters/default/mirror/pass").status == 409
    assert metric(other.metrics(), "kgate_mirror_records_total", vcluster="default") == 0

    # The mirroring instance dies; records keep coming; the other one continues from the stored
    # positions: every record once.
    first.kill9()
    more = produce(east, "b")
    wait_for(lambda: active(other), WAIT, what="the other instance to take the mirror over")
    assert "now runs the embedded mirror" in other.log()
    wait_for(lambda: len(west.read_all("fo-mir")) >= len(sent) + len(more), WAIT,
             what="the records produced after the takeover")
    assert sorted(v for _, _, v in west.read_all("fo-mir")) == sorted(sent + more), \
        "a record copied twice or skipped across the takeover"
    assert metric(other.metrics(), "kgate_mirror_records_total", vcluster="default") == \
        len(more)
