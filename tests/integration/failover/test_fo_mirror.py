"""The embedded mirror (issue 10, item 5), first slice: kgate copies the topics that match
mirror.topics from the active cluster to the other one, partition, key, value, headers and
timestamps as they were; it resumes from the position it stored after a restart (no record
copied twice, none skipped); the lag per partition is a metric; after a failover the direction
reverses, and what it copied is not copied back."""

import struct
import time

import pytest
from confluent_kafka import Producer

from fohelpers import metric, wait_for
from test_fo_offsets import confluent_consume, confluent_consumer, first_per_partition, \
    per_partition, results_by_group

TOPICS = {"fo-mir": 2, "fo-other": 1, "east.checkpoints.internal": 1,
          "west.checkpoints.internal": 1}
PER_PARTITION = 30
WAIT = 60


@pytest.fixture
def clusters(make_clusters):
    return make_clusters(topics=TOPICS)


def start_mirrored(clusters, make_kgate):
    """A kgate whose default vcluster mirrors fo-mir."""
    kg = make_kgate(clusters, start=False)
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 200 }')
    return kg.start()


def produce(cluster, topic, partitions, count, tag):
    """COUNT records to each partition, straight to CLUSTER: key k-P-I, value TAG-P-I, a header
    and a timestamp of their own. Returns {value: (partition, key, headers, timestamp)}."""
    p = Producer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "linger.ms": 5, "log_level": 3})
    sent = {}
    base = 1_700_000_000_000
    for part in range(partitions):
        for i in range(count):
            value = f"{tag}-{part}-{i}"
            headers = [("trace", f"t{part}{i}".encode()), ("empty", b"")]
            ts = base + part * 1000 + i
            p.produce(topic, key=f"k-{part}-{i}", value=value, partition=part, headers=headers,
                      timestamp=ts)
            sent[value] = (part, f"k-{part}-{i}", headers, ts)
    assert p.flush(30) == 0
    return sent


def read_full(cluster, topic):
    """[(partition, key, value, headers, timestamp)] of every record of TOPIC on CLUSTER."""
    return [(p, k, v, h, ts) for p, _, v, k, h, ts in cluster.read_records(topic)]


def values(records):
    return [v for _, _, v, _, _ in records]


def check_copies(records, sent, source):
    by_value = {v: (p, k, h, ts) for p, k, v, h, ts in records}
    for value, (part, key, headers, ts) in sent.items():
        assert value in by_value, f"{value} was not copied"
        p, k, h, t = by_value[value]
        assert (p, k, t) == (part, key, ts), (value, by_value[value], sent[value])
        assert h[:len(headers)] == headers, (value, h)
        assert ("kgate.mirror.source", source.encode()) in h, h


@pytest.mark.guard(300)
def test_mirror_copies_resumes_and_follows_the_active_side(clusters, make_kgate):
    east, west = clusters["east"], clusters["west"]
    kg = start_mirrored(clusters, make_kgate)

    sent = produce(east, "fo-mir", 2, PER_PARTITION, "a")
    produce(east, "fo-other", 1, 5, "not-mirrored")
    wait_for(lambda: len(west.read_all("fo-mir")) >= 2 * PER_PARTITION, WAIT,
             what="the mirror to copy east's records to west")
    copied = read_full(west, "fo-mir")
    assert sorted(values(copied)) == sorted(sent), "copied twice or something else copied"
    check_copies(copied, sent, "east")
    assert west.read_all("fo-other") == [], "a topic outside mirror.topics was copied"

    def lag(part):
        return metric(kg.metrics(), "kgate_mirror_lag_records", vcluster="default",
                      topic="fo-mir", partition=str(part))
    wait_for(lambda: lag(0) == 0 and lag(1) == 0, WAIT, what="lag 0 on both partitions")
    assert metric(kg.metrics(), "kgate_mirror_records_total", vcluster="default") == \
        2 * PER_PARTITION

    # A restart resumes where the stored position says: the new records only, once.
    assert kg.stop() == 0
    more = produce(east, "fo-mir", 2, 10, "b")
    kg.start()
    wait_for(lambda: len(west.read_all("fo-mir")) >= 2 * (PER_PARTITION + 10), WAIT,
             what="the mirror to copy the records produced while kgate was down")
    copied = read_full(west, "fo-mir")
    assert sorted(values(copied)) == sorted({**sent, **more}), "a record copied twice or lost"

    # After a failover west is the source: its new records go to east, east's copies stay put.
    reply, _, _ = kg.switch("default", to="west", reason="mirror")
    assert reply.status == 200 and reply.json["changed"], reply
    back = produce(west, "fo-mir", 2, 5, "c")
    wait_for(lambda: len(east.read_all("fo-mir")) >= 2 * (PER_PARTITION + 10 + 5), WAIT,
             what="the mirror to copy west's new records to east")
    on_east = read_full(east, "fo-mir")
    assert sorted(values(on_east)) == sorted({**sent, **more, **back}), \
        "east got a record twice: the mirror copied east's own records back"
    check_copies([r for r in on_east if r[2].startswith("c-")], back, "west")
    # and west did not get its own records again
    assert sorted(values(read_full(west, "fo-mir"))) == sorted({**sent, **more, **back})


def checkpoints_on(cluster, topic):
    """{(group, topic, partition): (upstream, downstream)}, the latest of each, decoded from
    MM2's documented format."""
    out = {}
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
    c = cluster._consumer()
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                continue
            k, v = m.key(), m.value()
            glen = struct.unpack(">h", k[:2])[0]
            group = k[2:2 + glen].decode()
            tlen = struct.unpack(">h", k[2 + glen:4 + glen])[0]
            name = k[4 + glen:4 + glen + tlen].decode()
            partition = struct.unpack(">i", k[4 + glen + tlen:])[0]
            version, up, down = struct.unpack(">hqq", v[:18])
            assert version == 0
            out[(group, name, partition)] = (up, down)
        return out
    finally:
        c.close()


@pytest.mark.guard(300)
def test_mirror_checkpoints_let_a_group_resume_after_a_switch(clusters, make_kgate):
    east, west = clusters["east"], clusters["west"]
    west.fill("fo-mir", 7, prefix="older")  # west offset = east offset + 7
    kg = start_mirrored(clusters, make_kgate)
    produce(east, "fo-mir", 2, PER_PARTITION, "a")
    wait_for(lambda: len(west.read_all("fo-mir")) >= 2 * (PER_PARTITION + 7), WAIT,
             what="the mirror to copy east's records")

    stopped = {0: 20, 1: 25}  # inside what was copied: records follow on both
    c = confluent_consumer(kg.bootstrap("default"), "g-mir", ["fo-mir"])
    assert per_partition(2, PER_PARTITION)(confluent_consume(c, per_partition(2, PER_PARTITION)))
    from confluent_kafka import TopicPartition
    c.commit(offsets=[TopicPartition("fo-mir", p, o) for p, o in stopped.items()],
             asynchronous=False)
    c.close()
    want = {("g-mir", "fo-mir", p): (o, o + 7) for p, o in stopped.items()}
    wait_for(lambda: {k: v for k, v in checkpoints_on(west, "east.checkpoints.internal").items()
                      if k[0] == "g-mir"} == want, WAIT,
             what="the mirror's checkpoints of g-mir on west")

    reply, _, _ = kg.switch("default", to="west", reason="mirror checkpoints")
    assert reply.status == 200 and reply.json["changed"], reply
    group = results_by_group(reply.json["offsets"])["g-mir"]
    assert group["result"] == "translated" and group["partitions"] == 2, reply.json["offsets"]
    c = confluent_consumer(kg.bootstrap("default"), "g-mir", ["fo-mir"], reset="latest")
    got = confluent_consume(c, per_partition(2, 1))
    c.close()
    assert first_per_partition(got) == {p: (o + 7, f"a-{p}-{o}") for p, o in stopped.items()}, \
        got[:5]


@pytest.mark.guard(300)
def test_a_target_that_is_down_shows_as_lag_and_is_caught_up_after(clusters, make_kgate):
    east, west = clusters["east"], clusters["west"]
    kg = start_mirrored(clusters, make_kgate)
    sent = produce(east, "fo-mir", 2, 10, "a")
    wait_for(lambda: len(west.read_all("fo-mir")) >= 20, WAIT, what="the first copies")

    def lag(part):
        return metric(kg.metrics(), "kgate_mirror_lag_records", vcluster="default",
                      topic="fo-mir", partition=str(part))
    west.freeze()
    kg.wait_cluster_up("west", False)
    more = produce(east, "fo-mir", 2, 15, "b")
    wait_for(lambda: lag(0) == 15 and lag(1) == 15, WAIT,
             what="the lag to show the 15 records a partition west has not got")
    assert metric(kg.metrics(), "kgate_mirror_errors_total", vcluster="default") > 0
    west.thaw()
    kg.wait_cluster_up("west", True)
    wait_for(lambda: lag(0) == 0 and lag(1) == 0, WAIT, what="the mirror to catch up")
    assert sorted(values(read_full(west, "fo-mir"))) == sorted({**sent, **more}), \
        "a record lost or copied twice across the outage"


@pytest.mark.guard(300)
def test_mirror_api_reports_the_lag_now_and_runs_a_pass_on_demand(clusters, make_kgate):
    """The calls a planned switchover makes (kg_mirror_lag, kg_mirror_pass_topics), through the
    admin API: GET .../mirror measures the lag now, POST .../mirror/pass copies what is left."""
    east, west = clusters["east"], clusters["west"]
    kg = make_kgate(clusters, vclusters=(("default", "east", "west"), ("plain", "east", "west")),
                    start=False)
    # One pass at start, the next an hour later: only the API moves records in this test.
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 3600000 }')
    kg.start()

    def first_pass_done():
        return [v for n, labels, v in kg.metrics() if n == "kgate_mirror_lag_records" and
                labels.get("topic") == "fo-mir"] == [0, 0]
    wait_for(first_pass_done, WAIT, what="the mirror's first pass")
    sent = produce(east, "fo-mir", 2, 12, "a")

    r = kg.http("GET", "/v1/vclusters/default/mirror")
    assert r.status == 200, r
    assert r.json.get("source") == "east" and r.json.get("target") == "west", (r.text, r.headers)
    assert r.json["partitions"] == {"fo-mir": {"0": 12, "1": 12}}, r.json
    assert r.json["total"] == 24 and r.json["not_mirrored"] == {} and r.json["stopped"] == {}
    assert west.read_all("fo-mir") == [], "the lag call copied records"

    r = kg.http("GET", "/v1/vclusters/default/mirror?topics=fo-mir,fo-other,nope")
    assert r.status == 200, r
    assert r.json["partitions"] == {"fo-mir": {"0": 12, "1": 12}}, r.json
    assert set(r.json["not_mirrored"]) == {"fo-other", "nope"}, r.json
    assert "mirror.topics" in r.json["not_mirrored"]["fo-other"], r.json

    r = kg.http("POST", "/v1/vclusters/default/mirror/pass")
    assert r.status == 200, r
    assert r.json["copied"] == 24 and r.json["total"] == 0, r.json
    assert r.json["partitions"] == {"fo-mir": {"0": 0, "1": 0}} and r.json["last_error"] is None
    copied = read_full(west, "fo-mir")
    assert sorted(values(copied)) == sorted(sent)
    check_copies(copied, sent, "east")

    r = kg.http("POST", "/v1/vclusters/default/mirror/pass")
    assert r.status == 200 and r.json["copied"] == 0, r
    assert kg.http("GET", "/v1/vclusters/plain/mirror").status == 409
    assert kg.http("GET", "/v1/vclusters/nope/mirror").status == 404
    assert sorted(values(read_full(west, "fo-mir"))) == sorted(sent), "copied twice"


def topic_names(cluster):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                         "log_level": 3})
    return set(admin.list_topics(timeout=15).topics)


@pytest.mark.guard(300)
@pytest.mark.parametrize("east_version,west_version", [("2.0.2", "2.0.2"), ("2.0.2", "2.12")])
def test_mirror_works_with_older_brokers_and_creates_no_topic(make_clusters, make_kgate,
                                                              east_version, west_version):
    """librdkafka 2.0.2's mock answers Metadata up to v2 only (no allow_auto_topic_creation):
    the mirror asks it for every topic, never for one by name, which would create it."""
    clusters = make_clusters(east=east_version, west=west_version, topics=TOPICS)
    east, west = clusters["east"], clusters["west"]
    kg = make_kgate(clusters, start=False)
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir", interval_ms: 200 }')
    kg.start()
    sent = produce(east, "fo-mir", 2, PER_PARTITION, "a")
    wait_for(lambda: len(west.read_all("fo-mir")) >= 2 * PER_PARTITION, WAIT,
             what="the mirror to copy east's records to west")
    copied = read_full(west, "fo-mir")
    assert sorted(values(copied)) == sorted(sent), "copied twice or something else copied"
    check_copies(copied, sent, "east")

    # Lag asked for a topic that exists nowhere: Metadata on both sides, and no topic created.
    before = {c: topic_names(clusters[c]) for c in clusters}
    assert "fo-mir-ghost" not in before["east"] | before["west"], before
    r = kg.http("GET", "/v1/vclusters/default/mirror?topics=fo-mir,fo-mir-ghost")
    assert r.status == 200, r
    assert r.json["partitions"] == {"fo-mir": {"0": 0, "1": 0}}, r.json
    assert "absent on the source" in r.json["not_mirrored"]["fo-mir-ghost"], r.json
    assert {c: topic_names(clusters[c]) for c in clusters} == before, "a topic was created"

    # After a failover west is the source: only its own records come back to east.
    reply, _, _ = kg.switch("default", to="west", reason="mirror on older brokers")
    assert reply.status == 200 and reply.json["changed"], reply
    back = produce(west, "fo-mir", 2, 5, "c")
    wait_for(lambda: len(east.read_all("fo-mir")) >= 2 * (PER_PARTITION + 5), WAIT,
             what="the mirror to copy west's new records to east")
    on_east = read_full(east, "fo-mir")
    assert sorted(values(on_east)) == sorted({**sent, **back}), "copied twice or copied back"
    check_copies([r for r in on_east if r[2].startswith("c-")], back, "west")


# ---------------------------------------------------------------------------------------------
# Records the target refuses (item 5: the DLQ). The target is a second kgate in front of west
# whose chaos rule answers Produce of fo-bad with MESSAGE_TOO_LARGE, as a broker would answer a
# record above its max.message.bytes: kgate's chaos is a real Kafka peer for the mirror.

BAD_TOPICS = {**TOPICS, "fo-bad": 2, "fo-dlq": 1}


def refusing_west(clusters, make_kgate, topic="fo-bad", error="MESSAGE_TOO_LARGE"):
    """(kgate in front of west whose rule answers Produce of TOPIC with ERROR, the rule's id)."""
    front = make_kgate({"west": clusters["west"]}, vclusters=(("front", "west", None),))
    r = front.http("POST", "/v1/chaos/rules",
                   {"type": "broken-brokers", "id": "refuse", "topic": topic,
                    "errors": {"produce": error}})
    assert r.status == 201, r
    return front, "refuse"


def mirror_to_refusing_west(make_clusters, make_kgate, dlq):
    """Clusters, the refusing kgate in front of west, its rule, a kgate mirroring fo-mir and
    fo-bad from east through it (with mirror.dlq = DLQ unless None), and what east got:
    (clusters, front, rule, kg, good records of fo-mir, bad records of fo-bad)."""
    clusters = make_clusters(topics=BAD_TOPICS)
    front, rule = refusing_west(clusters, make_kgate)
    kg = make_kgate({"east": clusters["east"], "west": front.bootstrap("front")}, start=False)
    dlq_key = f", dlq: {dlq}" if dlq else ""
    kg.add_vcluster_keys(f'mirror: {{ topics: "^fo-(mir|bad)$", interval_ms: 200{dlq_key} }}')
    kg.start()
    good = produce(clusters["east"], "fo-mir", 2, 10, "good")
    bad = produce(clusters["east"], "fo-bad", 2, 5, "bad")
    return clusters, front, rule, kg, good, bad


def header(headers, name):
    return dict(headers)[name].decode()


@pytest.mark.guard(300)
def test_records_the_target_refuses_go_to_the_dlq_with_the_reason(make_clusters, make_kgate):
    clusters, _, _, kg, good, bad = mirror_to_refusing_west(make_clusters, make_kgate, "fo-dlq")
    west = clusters["west"]
    wait_for(lambda: len(west.read_all("fo-dlq")) >= 10, WAIT, what="the refused records in fo-dlq")
    wait_for(lambda: len(west.read_all("fo-mir")) >= 20, WAIT, what="fo-mir's copies")
    assert sorted(values(read_full(west, "fo-mir"))) == sorted(good)
    assert west.read_all("fo-bad") == []
    dead = read_full(west, "fo-dlq")
    assert sorted(values(dead)) == sorted(bad), "a refused record missing or twice in the DLQ"
    offsets = {p: 0 for p in range(2)}
    for _, key, value, headers, ts in sorted(dead, key=lambda r: r[2]):
        part, k, hdrs, t = bad[value]
        assert (key, ts) == (k, t) and headers[:len(hdrs)] == hdrs, (value, key, headers)
        assert header(headers, "kgate.dlq.reason") == "MESSAGE_TOO_LARGE", headers
        assert header(headers, "kgate.dlq.source.cluster") == "east"
        assert header(headers, "kgate.dlq.source.topic") == "fo-bad"
        assert header(headers, "kgate.dlq.source.partition") == str(part)
        # produced in order, one partition at a time: the offset is the record's index
        assert header(headers, "kgate.dlq.source.offset") == value.rsplit("-", 1)[1], headers
        offsets[part] += 1
    assert offsets == {0: 5, 1: 5}
    samples = kg.metrics()
    assert metric(samples, "kgate_mirror_dlq_records_total", vcluster="default") == 10
    assert metric(samples, "kgate_mirror_stopped_partitions", vcluster="default") == 0
    r = kg.http("GET", "/v1/vclusters/default/mirror")
    assert r.status == 200 and r.json["total"] == 0 and r.json["stopped"] == {}, r.json


@pytest.mark.guard(300)
def test_without_a_dlq_a_refused_record_stops_its_partition_until_it_is_taken(make_clusters,
                                                                              make_kgate):
    clusters, front, rule, kg, good, bad = mirror_to_refusing_west(make_clusters, make_kgate, None)
    west = clusters["west"]
    wait_for(lambda: len(west.read_all("fo-mir")) >= 20, WAIT,
             what="fo-mir's copies (a stopped partition stops no other)")

    def stopped():
        r = kg.http("GET", "/v1/vclusters/default/mirror")
        assert r.status == 200, r
        return r.json
    wait_for(lambda: set(stopped()["stopped"].get("fo-bad", {})) == {"0", "1"}, WAIT,
             what="both partitions of fo-bad reported stopped")
    status = stopped()
    assert "MESSAGE_TOO_LARGE" in status["stopped"]["fo-bad"]["0"], status
    assert status["partitions"]["fo-bad"] == {"0": 5, "1": 5}, status
    assert metric(kg.metrics(), "kgate_mirror_stopped_partitions", vcluster="default") == 2
    assert "stopped" in kg.log() and "MESSAGE_TOO_LARGE" in kg.log()
    assert west.read_all("fo-bad") == [] and west.read_all("fo-dlq") == []

    # The target takes the records again: the partitions resume where they stopped, once.
    assert front.http("DELETE", f"/v1/chaos/rules/{rule}").status == 204
    wait_for(lambda: len(west.read_all("fo-bad")) >= 10, WAIT, what="fo-bad copied after all")
    assert sorted(values(read_full(west, "fo-bad"))) == sorted(bad), "lost or copied twice"
    wait_for(lambda: stopped()["stopped"] == {} and stopped()["total"] == 0, WAIT,
             what="no partition stopped any more")
    assert metric(kg.metrics(), "kgate_mirror_stopped_partitions", vcluster="default") == 0
    assert sorted(values(read_full(west, "fo-mir"))) == sorted(good)


@pytest.mark.guard(300)
def test_a_retriable_refusal_delays_the_copy_and_loses_nothing(make_clusters, make_kgate):
    clusters = make_clusters(topics=BAD_TOPICS)
    east, west = clusters["east"], clusters["west"]
    front, rule = refusing_west(clusters, make_kgate, topic="fo-mir", error="NOT_ENOUGH_REPLICAS")
    kg = make_kgate({"east": east, "west": front.bootstrap("front")}, start=False)
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 200, dlq: fo-dlq }')
    kg.start()
    sent = produce(east, "fo-mir", 2, 10, "a")

    def errors():
        return metric(kg.metrics(), "kgate_mirror_errors_total", vcluster="default")
    wait_for(lambda: errors() >= 3, WAIT, what="passes stopped by the retriable error")
    status = kg.http("GET", "/v1/vclusters/default/mirror").json
    assert status["partitions"]["fo-mir"] == {"0": 10, "1": 10}, status
    assert status["stopped"] == {} and "NOT_ENOUGH_REPLICAS" in status["last_error"], status
    assert west.read_all("fo-mir") == [] and west.read_all("fo-dlq") == [], \
        "a retriable error sent a record to the DLQ or lost it"

    assert front.http("DELETE", f"/v1/chaos/rules/{rule}").status == 204
    wait_for(lambda: len(west.read_all("fo-mir")) >= 20, WAIT, what="the copies once accepted")
    assert sorted(values(read_full(west, "fo-mir"))) == sorted(sent), "lost or copied twice"
    wait_for(lambda: kg.http("GET", "/v1/vclusters/default/mirror").json["last_error"] is None,
             WAIT, what="a pass that ends well")
    assert west.read_all("fo-dlq") == []
