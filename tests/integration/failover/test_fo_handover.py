"""What a client sees at a switch when the old side does not answer within switch.grace_ms
(issue 10, item 2): kgate answers in the old side's place with the retriable error Kafka uses
for a moved leader (NOT_LEADER_OR_FOLLOWER per partition), with the request's correlation id,
version and header version, never a bare disconnect with requests outstanding; a retrying client
then delivers on the new side with no error. Requests a client sends on its old connection
during the grace get the same answer at once, without reaching the old side.

A chaos latency rule holds the old side's answers at kgate (on: response), so a request is in
flight at the switch every time, whatever the machine's speed."""

import socket
import struct

import pytest
from confluent_kafka import KafkaError, Producer

from fohelpers import ClientRun, advertised_versions, print_flush, wait_for
from kghelpers import encode_request, read_uvarint, recv_frame, uvarint

NOT_LEADER_OR_FOLLOWER = 6
PRODUCE = 0
TOPIC = "fo-misc"


def hold_answers(kg, api="Produce", delay_ms=600):
    reply = kg.http("POST", "/v1/chaos/rules", {"type": "latency", "id": "hold", "on": "response",
                                                "api": api, "delay_ms": delay_ms})
    assert reply.status == 201, reply


def held_count(kg):
    return kg.http("GET", "/v1/chaos/rules/hold").json.get("injected", 0)


def switch_to_west(kg):
    reply, _, _ = kg.switch("default", to="west", reason="handover test")
    assert reply.status == 200, reply
    assert kg.vcluster_status()["active"] == "west"


def handover_answers(kg, api="Produce"):
    found = [v for n, l, v in kg.metrics() if n == "kgate_switch_answers_total"
             and l.get("vcluster") == "default" and l.get("api") == api]
    return found[0] if found else 0


def wait_healthy(run, predicate, timeout, what):
    def check():
        run.check_healthy()
        return predicate()
    return wait_for(check, timeout, what=what)


# ---------------------------------------------------------------------------------------------
# raw requests: what exactly kgate answers


def record_batch(value):
    """One record in a magic-2 batch (kafka-python builds it, CRC included)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    b.append(0, timestamp=None, key=None, value=value, headers=[])
    return bytes(b.build())


def produce_request(version, corr, topic, partitions, value=b"raw"):
    """Produce (acks=-1) of one record to each of PARTITIONS; flexible from v9."""
    records = record_batch(value)
    if version >= 9:
        parts = b"".join(struct.pack(">i", p) + uvarint(len(records) + 1) + records + b"\x00"
                         for p in partitions)
        body = (b"\x00" + struct.pack(">hi", -1, 10000) + uvarint(2)
                + uvarint(len(topic) + 1) + topic.encode() + uvarint(len(partitions) + 1) + parts
                + b"\x00" + b"\x00")
        return encode_request(PRODUCE, version, corr, body, flexible=True)
    parts = b"".join(struct.pack(">ii", p, len(records)) + records for p in partitions)
    body = (struct.pack(">hhi", -1, -1, 10000) + struct.pack(">i", 1)
            + struct.pack(">h", len(topic)) + topic.encode() + struct.pack(">i", len(partitions))
            + parts)
    return encode_request(PRODUCE, version, corr, body)


class Reader:
    """Reads a response body; FLEXIBLE: compact lengths (uvarint N+1) and tagged fields."""

    def __init__(self, frame, flexible):
        self.frame, self.at, self.flexible = frame, 0, flexible

    def fixed(self, fmt):
        values = struct.unpack_from(">" + fmt, self.frame, self.at)
        self.at += struct.calcsize(">" + fmt)
        return values

    def length(self, width="i"):
        """An array count or string length (-1: null)."""
        if self.flexible:
            n, self.at = read_uvarint(self.frame, self.at)
            return n - 1
        return self.fixed(width)[0]

    def string(self):
        n = max(self.length("h"), 0)
        text = self.frame[self.at:self.at + n].decode()
        self.at += n
        return text

    def tags(self):
        if self.flexible:
            count, self.at = read_uvarint(self.frame, self.at)
            for _ in range(count):
                _, self.at = read_uvarint(self.frame, self.at)
                size, self.at = read_uvarint(self.frame, self.at)
                self.at += size


def parse_produce_response(frame, version):
    """(correlation id, {(topic, partition): error code}) of a Produce response frame (v7+)."""
    r = Reader(frame, version >= 9)
    (corr,) = r.fixed("i")
    r.tags()  # response header v1
    errors = {}
    for _ in range(r.length()):
        name = r.string()
        for _ in range(r.length()):
            index, error, base_offset, _, _ = r.fixed("ihqqq")
            assert base_offset == -1
            if version >= 8:
                assert r.length() == 0  # record errors
                r.string()  # error message
            r.tags()
            errors[(name, index)] = error
        r.tags()
    return corr, errors


@pytest.mark.guard(180)
@pytest.mark.parametrize("flexible", [False, True], ids=["produce-v7", "produce-flexible"])
def test_raw_produce_in_flight_and_during_the_grace_get_not_leader(make_clusters, make_kgate,
                                                                   flexible):
    """A Produce in flight at the switch, answered late by the old side, and one sent on the same
    connection during the grace: both get kgate's NOT_LEADER_OR_FOLLOWER for each partition, in
    request order, with their correlation ids; then the connection closes."""
    kg = make_kgate(make_clusters(), extra_lines=["switch: { grace_ms: 1500 }"])
    kg.wait_probed()
    produce_max = advertised_versions(kg.bootstrap("default"))[PRODUCE][1]
    version = 9 if flexible else 7
    if version > produce_max:
        pytest.skip(f"Produce v{version} not offered (max v{produce_max})")
    hold_answers(kg, delay_ms=10000)
    host, port = kg.bootstrap("default").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.settimeout(30)
        s.sendall(produce_request(version, 101, TOPIC, [0, 2]))
        wait_for(lambda: held_count(kg) >= 1, 20, what="the old side's answer held at kgate")
        switch_to_west(kg)
        s.sendall(produce_request(version, 102, TOPIC, [1]))
        first = parse_produce_response(recv_frame(s), version)
        second = parse_produce_response(recv_frame(s), version)
        assert first == (101, {(TOPIC, 0): NOT_LEADER_OR_FOLLOWER,
                               (TOPIC, 2): NOT_LEADER_OR_FOLLOWER}), first
        assert second == (102, {(TOPIC, 1): NOT_LEADER_OR_FOLLOWER}), second
        assert s.recv(1) == b""  # closed behind the answers
    assert handover_answers(kg) >= 2


# ---------------------------------------------------------------------------------------------
# client libraries


def producer(kg, **extra):
    return Producer({"bootstrap.servers": kg.bootstrap("default"), "acks": "all",
                     "enable.idempotence": False, "linger.ms": 0,
                     "request.timeout.ms": 20000, **extra})


def produce_held_across_a_switch(kg, p):
    """Warm the connection, hold the next Produce answer at kgate, switch while it is held (the
    grace shorter than the hold): the delivery result of that record."""
    p.produce(TOPIC, b"warm-up")
    assert p.flush(20) == 0
    hold_answers(kg)
    results = []
    p.produce(TOPIC, b"in-flight", on_delivery=lambda e, m: results.append(e))
    p.poll(0)
    wait_for(lambda: held_count(kg) >= 1, 20, what="the answer held at kgate")
    switch_to_west(kg)
    p.flush(30)
    assert len(results) == 1
    return results[0]


class LogLines:
    """A logging.Logger stand-in for confluent-kafka's `logger`: keeps librdkafka's lines."""

    def __init__(self):
        self.lines = []

    def log(self, level, fmt, *args):
        self.lines.append(fmt % args if args else fmt)

    def matching(self, text):
        return [l for l in self.lines if text in l]


@pytest.mark.guard(120)
def test_librdkafka_without_retries_retries_not_leader(make_clusters, make_kgate):
    """message.send.max.retries=0: librdkafka still sends a record again after
    NOT_LEADER_OR_FOLLOWER (a leader change is not counted as a retry), so kgate's answer costs
    it nothing, where a cut connection failed the record. Its debug log shows the answer."""
    clusters = make_clusters()
    kg = make_kgate(clusters, extra_lines=["switch: { grace_ms: 50 }"])
    kg.wait_probed()
    logs = LogLines()
    p = producer(kg, **{"message.send.max.retries": 0, "debug": "msg,protocol", "logger": logs})
    assert produce_held_across_a_switch(kg, p) is None
    assert handover_answers(kg) >= 1
    seen = logs.matching("Not leader for partition")
    assert seen, "\n".join(logs.lines[-40:])
    wait_for(lambda: "in-flight" in [r[2] for r in clusters["west"].read_all(TOPIC)], 30,
             what="the record on the new side")


@pytest.mark.guard(120)
def test_a_retrying_producer_delivers_on_the_new_side(make_clusters, make_kgate):
    """confluent-kafka's defaults retry: the record kgate answered NOT_LEADER_OR_FOLLOWER is
    delivered with no error, and it is on the new side."""
    clusters = make_clusters()
    kg = make_kgate(clusters, extra_lines=["switch: { grace_ms: 50 }"])
    kg.wait_probed()
    assert produce_held_across_a_switch(kg, producer(kg)) is None
    assert handover_answers(kg) >= 1
    wait_for(lambda: "in-flight" in [r[2] for r in clusters["west"].read_all(TOPIC)], 30,
             what="the record on the new side")


@pytest.mark.guard(120)
def test_kafka_python_retries_and_delivers(make_clusters, make_kgate):
    from kafka import KafkaProducer
    clusters = make_clusters()
    kg = make_kgate(clusters, extra_lines=["switch: { grace_ms: 50 }"])
    kg.wait_probed()
    p = KafkaProducer(bootstrap_servers=kg.bootstrap("default"), acks="all", retries=5,
                      request_timeout_ms=20000, linger_ms=0)
    try:
        p.send(TOPIC, b"warm-up").get(20)
        hold_answers(kg)
        future = p.send(TOPIC, b"kp-in-flight")
        wait_for(lambda: held_count(kg) >= 1, 20, what="the answer held at kgate")
        switch_to_west(kg)
        future.get(30)  # raises on a delivery error
    finally:
        p.close(10)
    assert handover_answers(kg) >= 1
    wait_for(lambda: "kp-in-flight" in [r[2] for r in clusters["west"].read_all(TOPIC)],
             30, what="the record on the new side")


@pytest.mark.guard(180)
def test_a_steady_producer_without_retries_across_a_switch(make_clusters, make_kgate, tmp_path):
    """The issue's case: a librdkafka producer with retries=0 producing steadily, one request in
    flight at a time, across a switch whose grace the old side's answers fit in: no delivery
    error, and every record acknowledged."""
    kg = make_kgate(make_clusters(), extra_lines=["switch: { grace_ms: 3000 }"])
    kg.wait_probed()
    run = ClientRun("confluent", kg.bootstrap("default"), TOPIC, tmp_path, interval_ms=10,
                    consume=False,
                    producer_config={"message.send.max.retries": 0, "retries": 0,
                                     "enable.idempotence": False,
                                     "max.in.flight.requests.per.connection": 1}).start()
    try:
        wait_healthy(run, lambda: len(run.ack_times()) >= 20, 60, "acks before the switch")
        hold_answers(kg, delay_ms=300)
        wait_for(lambda: held_count(kg) >= 1, 20, what="an answer held at kgate")
        switch_to_west(kg)
        acked = len(run.ack_times())
        wait_healthy(run, lambda: len(run.ack_times()) >= acked + 50, 60,
                     "acks after the switch")
        run.finish()
    finally:
        run.stop()
    print_flush(f"steady producer, retries=0: {len(run.ack_times())} acked, "
                f"{len(run.nacked_seqs())} failed")
    assert not run.nacked_seqs(), run.diagnostics()
