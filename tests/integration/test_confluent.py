"""confluent-kafka-python (librdkafka 2.0.2 client) through kgate: idempotent producer, a
consumer group with rebalances and restarts, a transactional producer."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

COMMON = {"socket.timeout.ms": 10000, "broker.address.family": "v4",
          "topic.metadata.refresh.interval.ms": 5000}


def producer(bootstrap, **extra):
    conf = dict(COMMON, **{"bootstrap.servers": bootstrap, "message.timeout.ms": 30000,
                           "linger.ms": 5})
    conf.update(extra)
    return Producer(conf)


def consumer(bootstrap, group, **extra):
    conf = dict(COMMON, **{"bootstrap.servers": bootstrap, "group.id": group,
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    conf.update(extra)
    return Consumer(conf)


class Deliveries:
    """Delivery reports: (partition, offset) -> value for successes, errors listed."""

    def __init__(self):
        self.ok = {}
        self.errors = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.ok[(msg.partition(), msg.offset())] = msg.value()


def produce_n(p, topic, deliveries, start, n, prefix="m"):
    for i in range(start, start + n):
        p.produce(topic, key=b"k%d" % i, value=f"{prefix}{i}".encode(), on_delivery=deliveries)
        p.poll(0)


def consume_all(bootstrap, topic, partitions, want, timeout=60, **extra):
    """Reads `topic` from the beginning with a manual assignment until `want` records arrived."""
    c = consumer(bootstrap, "reader-" + uuid.uuid4().hex, **extra)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < want and time.monotonic() < deadline:
            for m in c.consume(500, 0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                records.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    return records


def test_idempotent_producer(kgate):
    p = producer(kgate.bootstrap, **{"enable.idempotence": True, "acks": "all"})
    d = Deliveries()
    produce_n(p, "idem6", d, 0, 3000)
    assert p.flush(60) == 0, "messages still queued after flush"
    assert not d.errors, d.errors[:5]
    assert len(d.ok) == 3000

    records = consume_all(kgate.bootstrap, "idem6", 6, 3000)
    got = {(part, off): value for part, off, value in records}
    assert len(records) == len(got), "duplicate records"
    assert got == d.ok, "consumed records differ from acknowledged ones"
    for part in range(6):
        offsets = sorted(off for pp, off in got if pp == part)
        assert offsets == list(range(len(offsets))), f"gap in partition {part}"
        # Within a partition the idempotent producer keeps production order.
        seq = [int(got[(part, o)][1:]) for o in offsets]
        assert seq == sorted(seq)


class Member:
    """A consumer-group member that commits synchronously after every batch and records what it
    received, its assignments, and whether each commit succeeded."""

    def __init__(self, name, bootstrap, group, topic, ledger):
        self.name = name
        self.ledger = ledger
        self.assignment = set()
        self.assign_events = 0
        self.revoke_events = 0
        self.c = consumer(bootstrap, group, **{"partition.assignment.strategy": "range"})
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.closed = False

    def _on_assign(self, c, partitions):
        self.assign_events += 1
        self.assignment = {tp.partition for tp in partitions}

    def _on_revoke(self, c, partitions):
        self.revoke_events += 1
        self.assignment -= {tp.partition for tp in partitions}

    def poll(self):
        batch = [m for m in self.c.consume(200, 0.05) if not m.error()]
        if not batch:
            return
        for m in batch:
            self.ledger.received(self.name, m.partition(), m.offset())
        next_offsets = {}
        for m in batch:
            next_offsets[m.partition()] = max(next_offsets.get(m.partition(), 0), m.offset() + 1)
        tps = [TopicPartition(batch[0].topic(), p, o) for p, o in next_offsets.items()]
        try:
            result = self.c.commit(offsets=tps, asynchronous=False)
            for tp in result:
                if tp.error is None:
                    self.ledger.committed(tp.partition, tp.offset)
                else:
                    self.ledger.commit_failures += 1
        except KafkaException:
            # Expected during a rebalance (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION): these
            # records stay uncommitted and may legitimately be delivered again.
            self.ledger.commit_failures += 1

    def close(self):
        if not self.closed:
            self.c.close()
            self.closed = True


class Ledger:
    def __init__(self):
        self.deliveries = []  # (member, partition, offset)
        self.committed_next = {}
        self.unexpected_redeliveries = []
        self.commit_failures = 0
        self.seen = set()

    def received(self, member, partition, offset):
        key = (partition, offset)
        if key in self.seen and offset < self.committed_next.get(partition, 0):
            self.unexpected_redeliveries.append((member, partition, offset))
        self.seen.add(key)
        self.deliveries.append((member, partition, offset))

    def committed(self, partition, next_offset):
        self.committed_next[partition] = max(self.committed_next.get(partition, 0), next_offset)


@pytest.mark.guard(300)
def test_consumer_group_rebalances_commits_and_restart(kgate):
    topic, group = "grp6", "grp-" + uuid.uuid4().hex[:8]
    p = producer(kgate.bootstrap)
    d = Deliveries()
    ledger = Ledger()
    produced = [0]

    def pump(members, target, done, timeout=90, what="group progress"):
        """Produces up to `target` messages (10 per round) while every member polls, until
        done() holds and everything acknowledged has been received."""
        deadline = time.monotonic() + timeout
        while True:
            if produced[0] < target:
                produce_n(p, topic, d, produced[0], min(10, target - produced[0]))
                produced[0] = min(produced[0] + 10, target)
            p.poll(0)
            for m in members:
                m.poll()
            if (produced[0] >= target and len(d.ok) == target and done()
                    and set(d.ok) <= ledger.seen):
                return
            assert not d.errors, d.errors[:3]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: produced {produced[0]}, acked {len(d.ok)}, "
                    f"received {len(ledger.seen)}, assignments "
                    f"{[(m.name, sorted(m.assignment)) for m in members]}")

    def parts_now(members):
        return [pp for m in members for pp in m.assignment]

    def covers_all(members):
        return lambda: sorted(parts_now(members)) == list(range(6))

    members = {}
    try:
        members["c1"] = Member("c1", kgate.bootstrap, group, topic, ledger)
        pump([members["c1"]], 300, covers_all([members["c1"]]), what="c1 alone")

        # Two more members join while messages keep flowing: the group rebalances.
        members["c2"] = Member("c2", kgate.bootstrap, group, topic, ledger)
        members["c3"] = Member("c3", kgate.bootstrap, group, topic, ledger)
        trio = [members["c1"], members["c2"], members["c3"]]
        pump(trio, 900, lambda: all(m.assignment for m in trio) and covers_all(trio)(),
             what="c1+c2+c3")

        # c1 leaves: its partitions move to c2 and c3.
        members["c1"].close()
        duo = [members["c2"], members["c3"]]
        pump(duo, 1200, covers_all(duo), what="c2+c3")
        assert members["c1"].revoke_events >= 1
        # A final round so the last batches are committed before the members leave.
        for _ in range(5):
            for m in duo:
                m.poll()
        for m in duo:
            m.close()

        # Restart: a new member resumes from the committed offsets.
        before_restart = set(ledger.seen)
        produce_n(p, topic, d, 1200, 300)
        produced[0] = 1500
        assert p.flush(30) == 0
        members["c4"] = Member("c4", kgate.bootstrap, group, topic, ledger)
        pump([members["c4"]], 1500, lambda: True, what="c4 after restart")
        members["c4"].close()
    finally:
        for m in members.values():
            m.close()

    assert set(d.ok) <= ledger.seen, "acknowledged messages were never consumed"
    assert not ledger.unexpected_redeliveries, \
        f"committed records delivered again: {ledger.unexpected_redeliveries[:10]}"
    c4_records = {(pp, o) for mem, pp, o in ledger.deliveries if mem == "c4"}
    new_records = set(d.ok) - before_restart
    assert new_records <= c4_records
    assert c4_records - new_records == set(), \
        f"c4 re-read {len(c4_records - new_records)} records committed before the restart"
    consumed_by = {}
    for mem, pp, _ in ledger.deliveries:
        consumed_by.setdefault(pp, set()).add(mem)
    assert any(len(ms) >= 2 for ms in consumed_by.values()), "no partition ever moved"
    assert members["c2"].assign_events >= 1 and members["c3"].assign_events >= 1
    print(f"commit failures during rebalances: {ledger.commit_failures}, "
          f"records delivered twice: {len(ledger.deliveries) - len(ledger.seen)}")


def test_transactional_producer(kgate):
    p = producer(kgate.bootstrap, **{"transactional.id": "kgate-it-" + uuid.uuid4().hex[:8],
                                     "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    d = Deliveries()

    p.begin_transaction()
    produce_n(p, "txn3", d, 0, 100, prefix="committed-")
    p.commit_transaction(30)

    p.begin_transaction()
    produce_n(p, "txn3", d, 100, 50, prefix="aborted-")
    p.flush(30)
    p.abort_transaction(30)

    p.begin_transaction()
    produce_n(p, "txn3", d, 150, 100, prefix="committed-")
    p.commit_transaction(30)
    assert not d.errors, d.errors[:5]

    committed = {f"committed-{i}".encode() for i in list(range(100)) + list(range(150, 250))}
    # Read everything the partitions hold (committed + aborted data records).
    records = consume_all(kgate.bootstrap, "txn3", 3, 250, **{"isolation.level": "read_committed"})
    values = [v for _, _, v in records]
    assert committed <= set(values), "a committed transaction's messages are missing"
    # librdkafka's mock cluster writes no transaction markers and returns no aborted-transaction
    # list in Fetch, so whether aborted records are hidden from read_committed consumers is not
    # observable against it (a broker property kgate passes through). Reported, not asserted.
    aborted_seen = sum(1 for v in values if v.startswith(b"aborted-"))
    print(f"aborted records visible to read_committed (mock cluster has no markers): "
          f"{aborted_seen}")
