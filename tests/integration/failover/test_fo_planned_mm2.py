"""Planned switchover with MirrorMaker 2 as the replication (issue 10, items 6 and 4):
`replication: { kind: mirrormaker2 }`. kgate measures MM2's lag from its offset syncs
(mm2-offset-syncs.<target alias>.internal) and the end offsets of both sides, holds new Produce
requests until every partition clients used is copied, switches, and translates the groups'
offsets with MM2's checkpoints.

No MirrorMaker 2 runs here: the test plays it. A copier thread (confluent-kafka) copies the topic
from east to west record by record, writes offset syncs the way MM2 does (Kafka's OffsetSync
layout, built here with struct.pack: a sync when the upstream -> downstream delta changes or 100
offsets went by) after the copies are acknowledged, and on demand a checkpoint of a group
(Kafka's Checkpoint layout). west's partitions are pre-filled with a different number of older
records each, so every offset differs between the sides: a lag or a translation computed from
the wrong offsets shows."""

import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import fohelpers
import kghelpers
from fohelpers import ClientRun, metric, wait_for
from mm2records import checkpoint_key, checkpoint_value, offset_sync, write_records

TOPIC = "fo-mm2"
SOLO = "fo-mm2-solo"    # used through kgate, never replicated
EMPTY = "fo-mm2-empty"  # used through kgate (metadata only), no records: nothing to replicate
SYNCS = "mm2-offset-syncs.west.internal"  # MM2 replicating east -> west (west's alias)
SYNCS_BACK = "mm2-offset-syncs.east.internal"  # and west -> east, for a failback
CHECKPOINTS = "east.checkpoints.internal"  # on west: groups of east (east's alias)
TOPICS = {TOPIC: 3, SOLO: 1, EMPTY: 1, SYNCS: 1, SYNCS_BACK: 1, CHECKPOINTS: 1,
          "west.checkpoints.internal": 1}
PREFILL = {0: 17, 1: 29, 2: 41}  # older records on west before the copies
WAIT = 90
GROUP_AT = {0: 20, 1: 21, 2: 22}  # the group's committed offsets on east


@pytest.fixture
def clusters(make_clusters):
    return make_clusters(topics=TOPICS)


def checkpoint_record(group, topic, partition, upstream, downstream):
    return (checkpoint_key(group, topic, partition), checkpoint_value(upstream, downstream))


# Records of the offset-syncs topic that are no offset sync: skipped, counted, harmless.
CORRUPT_SYNCS = [
    (b"\x00\x05hello", b"garbage"),                            # no sync at all
    checkpoint_record("g", TOPIC, 0, 1, 1),                    # a foreign MM2 record
    (offset_sync(TOPIC, 0, 1, 1)[0], None),                    # a tombstone
    (offset_sync(TOPIC, 0, 1, 1)[0], offset_sync(TOPIC, 0, 1, 1)[1][:12]),  # cut short
]


class Mm2Copier:
    """Plays MirrorMaker 2 from SOURCE to TARGET for TOPIC, from offsets START ({partition:
    offset}, default 0): copies each record to the same partition, remembers source offset ->
    target offset, and writes offset syncs to mm2-offset-syncs.<target>.internal on the cluster
    SYNCS_AT after the copies were acknowledged."""

    def __init__(self, source, target, syncs_at, partitions=3, start=None):
        self.source, self.target, self.syncs_at = source, target, syncs_at
        self.syncs_topic = f"mm2-offset-syncs.{target.name}.internal"
        self.start_at = start or {p: 0 for p in range(partitions)}
        self.partitions = partitions
        self.map = {p: {} for p in range(partitions)}
        self.last_sync = {}
        self.syncs_written = 0
        self.synced = set()  # partitions with an offset sync written
        self.lock = threading.Lock()
        self.run_copy = threading.Event()
        self.run_copy.set()
        self.idle = threading.Event()
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def pause(self):
        """Returns once no copy is in progress."""
        self.run_copy.clear()
        self.idle.clear()
        assert self.idle.wait(WAIT), "the copier did not pause"

    def resume(self):
        self.run_copy.set()

    def stop(self):
        self.stopping.set()
        self.run_copy.set()
        self.thread.join(WAIT)
        assert self.error is None, self.error

    def copied(self):
        with self.lock:
            return sum(len(m) for m in self.map.values())

    def _main(self):
        try:
            self._copy()
        except Exception as e:  # the test fails on it in stop()
            self.error = repr(e)

    def _copy(self):
        consumer = Consumer({"bootstrap.servers": self.source.bootstrap,
                             "group.id": "mm2-copier-" + uuid.uuid4().hex[:6],
                             "enable.auto.commit": False, "broker.address.family": "v4",
                             "log_level": 3})
        consumer.assign([TopicPartition(TOPIC, p, o) for p, o in self.start_at.items()])
        copies = Producer({"bootstrap.servers": self.target.bootstrap,
                           "broker.address.family": "v4", "linger.ms": 2, "log_level": 3})
        syncs = Producer({"bootstrap.servers": self.syncs_at.bootstrap,
                          "broker.address.family": "v4", "linger.ms": 2, "log_level": 3})
        try:
            while not self.stopping.is_set():
                if not self.run_copy.is_set():
                    self.idle.set()
                    self.run_copy.wait()
                    continue
                batch = [m for m in consumer.consume(num_messages=500, timeout=0.05)
                         if not m.error()]
                if batch:
                    self._copy_batch(batch, copies, syncs)
        finally:
            consumer.close()

    def _copy_batch(self, batch, copies, syncs):
        done = []
        for m in batch:
            copies.produce(TOPIC, key=m.key(), value=m.value(), partition=m.partition(),
                           headers=m.headers(), timestamp=m.timestamp()[1],
                           on_delivery=lambda err, msg, u=m.offset():
                           done.append((err, msg.partition(), u, msg.offset())))
        assert copies.flush(30) == 0, "copies not acknowledged"
        errors = [e for e, _, _, _ in done if e is not None]
        assert not errors, errors
        new_syncs = []
        with self.lock:
            for _, p, u, d in sorted(done, key=lambda x: (x[1], x[2])):
                self.map[p][u] = d
                last = self.last_sync.get(p)
                if last is None or d - u != last[1] - last[0] or u - last[0] >= 100:
                    self.last_sync[p] = (u, d)
                    new_syncs.append(offset_sync(TOPIC, p, u, d))
        for key, value in new_syncs:
            syncs.produce(self.syncs_topic, key=key, value=value, partition=0)
        assert syncs.flush(30) == 0, "offset syncs not acknowledged"
        with self.lock:
            self.syncs_written += len(new_syncs)
            self.synced = set(self.last_sync)

    def next_target_offsets(self):
        """{partition: the target offset after the last copy}: where other writers start."""
        with self.lock:
            return {p: max(m.values()) + 1 for p, m in self.map.items() if m}

    def translate(self, partition, offset):
        """The target offset of the source's next offset OFFSET (copied already)."""
        with self.lock:
            m = self.map[partition]
            return m[offset] if offset in m else m[offset - 1] + 1

    def write_checkpoint(self, group, committed):
        """A checkpoint per partition of GROUP's COMMITTED offsets on the source, to
        CHECKPOINTS on the target (once the copier has copied up to them)."""
        wait_for(lambda: all(c in self.map[p] or c - 1 in self.map[p]
                             for p, c in committed.items()), WAIT,
                 what="the copier to reach the group's offsets")
        write_records(self.target, f"{self.source.name}.checkpoints.internal",
                      [checkpoint_record(group, TOPIC, p, c, self.translate(p, c))
                       for p, c in committed.items()])


def start_kgate(clusters, make_kgate, replication="kind: mirrormaker2", hold_ms=30000):
    kg = make_kgate(clusters, start=False,
                    extra_lines=[f"switch: {{ planned_hold_ms: {hold_ms} }}"])
    kg.add_vcluster_keys(f"replication: {{ {replication} }}")
    return kg.start()


def produce_to(cluster, counts, prefix):
    """COUNTS ({partition: n}) records of TOPIC straight to CLUSTER: "PREFIX-<partition>-<i>"."""
    p = Producer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "log_level": 3})
    for partition, n in counts.items():
        for i in range(n):
            p.produce(TOPIC, value=f"{prefix}-{partition}-{i}", partition=partition)
    assert p.flush(30) == 0


def prepare(clusters, syncs_at="east", records=50):
    """west pre-filled, east with RECORDS a partition: the copier copies them (and goes on)."""
    east, west = clusters["east"], clusters["west"]
    produce_to(west, PREFILL, "older")
    east.fill(TOPIC, records, prefix="rec")
    copier = Mm2Copier(east, west, clusters[syncs_at]).start()
    # MM2 has copied east's records and written its first offset syncs (a sync of a partition
    # goes out after its copies are acknowledged)
    wait_for(lambda: copier.copied() >= 3 * records and len(copier.synced) == 3, WAIT,
             what="the copier to copy east's records and write offset syncs")
    return copier


def producers(kg, tmp_path):
    """librdkafka without retries (the client that loses what a switch fails), ~500 records/s,
    and with them, ~100/s."""
    bs = kg.bootstrap("default")
    no_retry = {"linger.ms": 20, "message.send.max.retries": 0, "enable.idempotence": False}
    runs = [ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=2, producer_config=no_retry,
                      label="confluent-noretry", consume=False),
            ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=10,
                      producer_config={"linger.ms": 20}, label="confluent", consume=False)]
    for r in runs:
        r.start()
    return runs


def wait_acks(runs, more):
    fohelpers.wait_acks(runs, more, WAIT)


def finish(runs, cluster):
    fohelpers.finish_runs(runs, cluster, TOPIC, WAIT)


def in_order(run, cluster):
    """RUN's records (a producer without retries) are on CLUSTER in the order it sent them, per
    partition: a record copied after the switch would come after newer ones."""
    stored = cluster.seqs(TOPIC, run.run_id)
    by_partition = {}
    for seq, where in stored.items():
        for p, o in where:
            by_partition.setdefault(p, []).append((o, seq))
    for p, records in by_partition.items():
        seqs = [seq for _, seq in sorted(records)]
        assert seqs == sorted(seqs), f"{run.kind}: partition {p} out of order"


def planned(kg, **body):
    return kg.http("POST", "/v1/vclusters/default/failover",
                   {"planned": True, "reason": "planned switch with MM2", **body}, timeout=120)


def group_consumer(bootstrap, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "latest", "enable.auto.commit": False,
                  "broker.address.family": "v4", "session.timeout.ms": 6000, "log_level": 3})
    c.subscribe([TOPIC])
    return c


def first_values(c, partitions=3):
    """The first record value the consumer C gets on each partition."""
    got = {}
    deadline = time.monotonic() + WAIT
    while len(got) < partitions:
        assert time.monotonic() < deadline, f"the group got only {got}"
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.setdefault(m.partition(), m.value().decode())
    return got


@pytest.mark.guard(600)
def test_planned_switch_waits_for_mm2_loses_nothing_and_translates_offsets(clusters, make_kgate,
                                                                          tmp_path):
    east, west = clusters["east"], clusters["west"]
    write_records(east, SYNCS, CORRUPT_SYNCS)
    copier = prepare(clusters)
    kg = start_kgate(clusters, make_kgate)
    group = "fo-mm2-group-" + uuid.uuid4().hex[:6]
    # the group commits on east through kgate, and stops (its members are gone at the switch)
    c = group_consumer(kg.bootstrap("default"), group)
    wait_for(lambda: (c.poll(0.2), c.assignment())[1], WAIT, what="the group's assignment")
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in GROUP_AT.items()],
             asynchronous=False)
    c.close()
    assert east.committed(TOPIC, group) == GROUP_AT
    copier.write_checkpoint(group, GROUP_AT)

    runs = producers(kg, tmp_path)
    back = None
    try:
        wait_acks(runs, 300)
        reply = planned(kg)
        copied_at_switch = copier.copied()
        assert reply.status == 200 and reply.json["changed"], reply.json
        report = reply.json["planned"]
        print("planned failover with MM2:", report)
        assert report["outcome"] == "switched" and report["replication"] == "mirrormaker2", report
        assert report["release_failed"] == 0, report
        assert reply.json["to"] == "west"
        # the group's offsets: translated with the checkpoint
        offsets = reply.json["offsets"]
        entry = [g for g in offsets["groups"] if g["group"] == group]
        assert entry and entry[0]["result"] == "translated", offsets
        wait_acks(runs, 100)
        acked = {r.kind: set(r.ack_times()) for r in runs}
        # kgate switched once MM2 had copied everything: nothing was left for it to copy after,
        # and what the producers were told was written is on west exactly once
        assert copier.copied() == copied_at_switch
        copier.stop()
        for r in runs:
            r.check_healthy()
            stored = west.seqs(TOPIC, r.run_id)
            assert not acked[r.kind] - set(stored), f"{r.kind}: acked records missing on west"
            assert all(len(w) == 1 for w in stored.values()), f"{r.kind}: stored twice"
        in_order(runs[0], west)

        # the group resumes on west where it stopped on east: the same records, other offsets
        assert west.committed(TOPIC, group) == {p: copier.translate(p, o)
                                                for p, o in GROUP_AT.items()}
        c = group_consumer(kg.bootstrap("default"), group)
        try:
            assert first_values(c) == {p: f"rec-{p}-{o}" for p, o in GROUP_AT.items()}
        finally:
            c.close()

        # MM2 in the other direction (from what west got after the switch), then a failback
        back = Mm2Copier(west, east, west, start=copier.next_target_offsets()).start()
        wait_acks(runs, 200)
        reply = kg.http("POST", "/v1/vclusters/default/failback",
                        {"planned": True, "reason": "planned failback with MM2"}, timeout=120)
        assert reply.status == 200 and reply.json["to"] == "east", reply.json
        print("planned failback with MM2:", reply.json["planned"])
        assert reply.json["planned"]["replication"] == "mirrormaker2"
        copied_back = back.copied()
        finish(runs, east)
        assert back.copied() == copied_back
        in_order(runs[0], east)
    finally:
        for r in runs:
            r.stop()
        copier.stop()
        if back:
            back.stop()

    entries = [e for e in kg.audit_entries() if e["type"] == "switch.completed"]
    for e in entries[-2:]:
        assert e["details"]["planned"]["replication"] == "mirrormaker2", e
        assert "lag_seen" in e["details"]["planned"], e
    samples = kg.metrics()
    # read once, by the failover (the failback reads the other direction's topic)
    assert metric(samples, "kgate_offsync_records_skipped_total",
                  vcluster="default") == len(CORRUPT_SYNCS)
    assert metric(samples, "kgate_planned_switches_total", vcluster="default",
                  result="completed") == 2


@pytest.mark.guard(600)
@pytest.mark.parametrize("syncs_at", ["east", "west"])
def test_planned_switch_aborts_while_mm2_lags(clusters, make_kgate, tmp_path, syncs_at):
    east = clusters["east"]
    copier = prepare(clusters, syncs_at)
    location = "source" if syncs_at == "east" else "target"
    kg = start_kgate(clusters, make_kgate,
                     replication=f"kind: mirrormaker2, offset_syncs: {location}", hold_ms=3000)
    runs = producers(kg, tmp_path)
    try:
        wait_acks(runs, 100)
        copier.pause()  # MM2 stopped: the lag grows and never reaches 0
        wait_acks(runs, 100)
        reply = planned(kg)
        assert reply.status == 409, reply.json
        assert reply.json["error"].startswith("replication lag"), reply.json
        assert "MirrorMaker 2 did not copy everything to 'west'" in reply.json["error"]
        report = reply.json["planned"]
        assert report["outcome"] == "aborted" and report["replication"] == "mirrormaker2"
        assert report["held_requests_went_to"] == "old side" and report["held_requests"] > 0
        behind = report["lag_at_abort"][TOPIC]
        assert behind and all(n > 0 for n in behind.values()), report
        for p in behind:
            assert f"{TOPIC}[{p}]" in reply.json["error"], reply.json
        assert kg.vcluster_status()["active"] == "east"
        finish(runs, east)
    finally:
        for r in runs:
            r.stop()
        copier.stop()
    aborted = [e for e in kg.audit_entries() if e["type"] == "switch.planned_aborted"]
    assert aborted[-1]["details"]["planned"]["replication"] == "mirrormaker2", aborted[-1]


@pytest.mark.guard(600)
@pytest.mark.parametrize("how", ["used", "replication.topics"])
def test_planned_switch_aborts_on_a_topic_mm2_does_not_replicate(clusters, make_kgate, how):
    """SOLO, which the copier never copies, counts when clients used it through kgate, or when
    replication.topics names it (written straight to east: no client used it)."""
    copier = prepare(clusters)
    replication = "kind: mirrormaker2"
    if how == "replication.topics":
        replication += f', topics: "^{SOLO}$|^{EMPTY}$"'
        clusters["east"].fill(SOLO, 5, prefix="solo")
    kg = start_kgate(clusters, make_kgate, replication=replication)
    try:
        p = Producer({"bootstrap.servers": kg.bootstrap("default"),
                      "broker.address.family": "v4", "log_level": 3})
        if how == "used":
            for i in range(5):
                p.produce(SOLO, value=f"solo-{i}")
            assert p.flush(30) == 0
            p.list_topics(EMPTY, timeout=30)  # used, but holds no record
        else:
            p.list_topics(TOPIC, timeout=30)  # the only topic clients used
        reply = planned(kg)
        assert reply.status == 409, reply.json
        error = reply.json["error"]
        assert error.startswith("not replicated by MirrorMaker 2: " + SOLO), error
        assert EMPTY not in error and SYNCS in error, error
        assert kg.vcluster_status()["active"] == "east"
    finally:
        copier.stop()


def replication_lag(kg):
    reply = kg.http("GET", "/v1/vclusters/default/replication")
    assert reply.status == 200, reply.json
    return reply.json


@pytest.mark.guard(600)
def test_replication_lag_counts_exactly_what_mm2_has_not_copied(clusters, make_kgate):
    """GET /v1/vclusters/NAME/replication measures as a planned switch does. The offsets differ
    between the sides (west pre-filled) and the latest sync of a partition is older than its end
    (MM2 writes one when the offset delta changes): the lag must still be exactly the records
    not copied, per partition."""
    east = clusters["east"]
    copier = prepare(clusters, records=150)  # a sync at 0 and one at 100 (offset.lag.max)
    kg = start_kgate(clusters, make_kgate, replication=f'kind: mirrormaker2, topics: "^{TOPIC}$"')
    try:
        wait_for(lambda: replication_lag(kg)["total"] == 0, WAIT, what="MM2 to catch up")
        copier.pause()
        assert all(u == 100 for u, _ in copier.last_sync.values()), copier.last_sync
        behind = {0: 3, 1: 0, 2: 7}
        produce_to(east, behind, "late")
        lag = replication_lag(kg)
        assert lag["partitions"] == {TOPIC: {str(k): n for k, n in behind.items()}}, lag
        assert lag["total"] == sum(behind.values()) and not lag["not_replicated"], lag
        assert lag["replication"] == "mirrormaker2" and lag["offset_syncs_topic"] == SYNCS, lag
        assert (lag["from"], lag["to"], lag["vcluster"]) == ("east", "west", "default"), lag
        # what one measurement costs (through the admin API; printed, never asserted)
        took = []
        for _ in range(20):
            t0 = time.monotonic()
            replication_lag(kg)
            took.append(time.monotonic() - t0)
        print(f"GET .../replication (MM2, 3 partitions): median {sorted(took)[10] * 1000:.1f} ms")
        copier.resume()
        wait_for(lambda: replication_lag(kg)["total"] == 0, WAIT, what="MM2 to catch up again")
    finally:
        copier.stop()
    plain = make_kgate(clusters)  # no replication kgate can measure
    reply = plain.http("GET", "/v1/vclusters/default/replication")
    assert reply.status == 409 and "no replication" in reply.json["error"], reply.json
    assert plain.http("GET", "/v1/vclusters/nosuch/replication").status == 404


@pytest.mark.parametrize("replication, error", [
    ("kind: mm2", "replication.kind: must be none, embedded or mirrormaker2"),
    ("offset_syncs: source", "missing required key 'kind'"),
    ("kind: mirrormaker2, offset_syncs: remote", "must be source or target"),
    ("kind: mirrormaker2, topics: \"(a\"", "replication.topics"),
    ("kind: embedded", "it needs mirror.topics"),
    ("kind: none, topics: x", "only with kind: mirrormaker2"),
])
def test_bad_replication_config_is_refused_at_load(tmp_path, replication, error):
    path = tmp_path / "kgate.yaml"
    text = kghelpers.kgate_config_yaml({"east": "127.0.0.1:1", "west": "127.0.0.1:2"},
                                       [("default", 19092, "east", "west")], 19644,
                                       str(tmp_path / "state.db"))
    path.write_text(text.replace("secondary: west", f"secondary: west, replication: "
                                                    f"{{ {replication} }}", 1))
    assert "replication:" in path.read_text()
    cp = subprocess.run([kghelpers.KGATE_BIN, "check", "-c", str(path)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=60)
    assert cp.returncode != 0 and error in cp.stdout + cp.stderr, (cp.stdout, cp.stderr)
