"""No response kgate sends ever carries a backend broker address.

Every client talks to kgate through a capturing relay: kgate advertises 127.0.0.2 and listens on
127.0.0.1; the relay listens on 127.0.0.2 on kgate's ports and forwards to 127.0.0.1, so every
connection a client makes (bootstrap and node ports alike) passes through it. Each response frame
is scanned for the backend's "host:port" text and for its host string followed by its port as a
big-endian int32 (how broker entries are encoded).

With KGATE_TEST_DIRECT=1 the relay fronts the dev cluster itself, and the scan must find the
backend addresses: proof that the scan can fail.
"""

import json
import os
import re
import socket
import struct
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaConsumer

from kghelpers import (INTEGRATION_DIR, KGATE_PORTS, ROOT, Relay, backend_address_hits, load_api_names,
                       read_uvarint, recv_frame, run, uvarint)

RELAY_HOST = "127.0.0.2"
RDK = {"socket.timeout.ms": 10000, "broker.address.family": "v4"}

METADATA, PRODUCE, FETCH, FIND_COORDINATOR, INIT_PRODUCER_ID = 3, 0, 1, 10, 22


def start_relay(gw):
    if gw.direct:
        # Only the bootstrap connection can be relayed: the clients then connect to the
        # backend addresses the (unrewritten) metadata gives them.
        host, port = gw.backend.hostports[0]
        relay = Relay(RELAY_HOST, {port: (host, port)}).start()
        return relay, f"{RELAY_HOST}:{port}"
    routes = {p: ("127.0.0.1", p) for p in range(gw.base, gw.base + KGATE_PORTS)}
    return Relay(RELAY_HOST, routes).start(), f"{RELAY_HOST}:{gw.base}"


def drive_librdkafka(bootstrap, topic, group):
    run(["kcat", "-L", "-b", bootstrap, "-m", "15", "-X", "broker.address.family=v4"], 60)
    run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "broker.address.family=v4"], 60,
        input=b"".join(b"kcat-%d\n" % i for i in range(100)))
    run(["kcat", "-C", "-b", bootstrap, "-G", group + "-kcat", topic, "-c", "100",
         "-X", "broker.address.family=v4", "-X", "auto.offset.reset=earliest"], 90)

    p = Producer(dict(RDK, **{"bootstrap.servers": bootstrap, "enable.idempotence": True}))
    for i in range(50):
        p.produce(topic, value=b"idem-%d" % i)
    assert p.flush(30) == 0
    t = Producer(dict(RDK, **{"bootstrap.servers": bootstrap,
                              "transactional.id": "addr-" + uuid.uuid4().hex[:6]}))
    t.init_transactions(30)
    t.begin_transaction()
    t.produce(topic, value=b"txn")
    t.commit_transaction(30)

    c = Consumer(dict(RDK, **{"bootstrap.servers": bootstrap, "group.id": group + "-ck",
                              "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    got = 0
    for _ in range(200):
        msgs = c.consume(100, 0.2)
        got += sum(1 for m in msgs if not m.error())
        if got >= 151:
            break
    c.commit(asynchronous=False)
    c.close()
    assert got >= 151

    AdminClient(dict(RDK, **{"bootstrap.servers": bootstrap})).list_topics(timeout=15)


def drive_librdkafka_212(bootstrap, topic, group):
    client = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")
    run([client, "produce", "-b", bootstrap, "-t", topic, "-n", "50", "-p", "rdk212"], 90)
    run([client, "consume", "-b", bootstrap, "-t", topic, "-g", group + "-212", "-n", "50"], 120)


def drive_kafka_python(bootstrap, topic, group):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    admin.describe_cluster()
    admin.close()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group + "-kpy",
                      auto_offset_reset="earliest", consumer_timeout_ms=10000,
                      request_timeout_ms=15000)
    for n, _ in enumerate(c, 1):
        if n >= 100:
            break
    c.commit()
    c.close()


def drive_kafkajs(bootstrap, topic, group):
    args = {"bootstrap": bootstrap, "topic": topic, "count": 50, "count_after": 10,
            "partitions": 3, "group": group + "-kjs"}
    cp = run(["node", os.path.join(INTEGRATION_DIR, "node", "kafkajs_client.cjs"),
              json.dumps(args)], 180)
    json.loads(cp.stdout.decode().strip().splitlines()[-1])


@pytest.mark.guard(400)
def test_no_response_carries_a_backend_address(kgate_factory):
    gw = kgate_factory(advertised_host=RELAY_HOST)
    relay, bootstrap = start_relay(gw)
    group = "addr-" + uuid.uuid4().hex[:6]
    try:
        drive_librdkafka(bootstrap, "addr3", group)
        drive_librdkafka_212(bootstrap, "addr3", group)
        drive_kafka_python(bootstrap, "addr3", group)
        drive_kafkajs(bootstrap, "addr3", group)
    finally:
        relay.stop()
    exchanges, unmatched = relay.snapshot()
    names = load_api_names()

    responses = [(port, ex) for port, ex in exchanges if ex.response is not None]
    seen_apis = {ex.api_key for _, ex in responses}
    # Direct mode relays only bootstrap connections (Metadata); through kgate, everything.
    expected = (METADATA,) if gw.direct else (METADATA, PRODUCE, FETCH, FIND_COORDINATOR,
                                              INIT_PRODUCER_ID)
    for api in expected:
        assert api in seen_apis, f"no {names.get(api)} response captured: the clients changed?"

    leaks = []
    for port, ex in responses:
        for hit in backend_address_hits(ex.response, gw.backend.hostports):
            leaks.append(f"{names.get(ex.api_key, ex.api_key)} v{ex.api_version} on port "
                         f"{port}: {hit}")
    for direction, frame in unmatched:
        for hit in backend_address_hits(frame, gw.backend.hostports):
            leaks.append(f"unmatched {direction} frame: {hit}")

    if gw.direct:
        assert leaks, "the scan found no backend address in the dev cluster's own responses"
        return
    assert not leaks, "backend addresses reached clients:\n" + "\n".join(leaks[:30])
    # The rewritten entries are there: kgate's advertised host with one of its node ports.
    own = [struct.pack(">i", p) for p in range(gw.base + 1, gw.base + KGATE_PORTS)]
    metadata = [ex.response for _, ex in responses if ex.api_key == METADATA]
    assert all(any(RELAY_HOST.encode() + b in r for b in own) for r in metadata)
    print(f"scanned {len(responses)} responses over "
          f"{len({(ex.api_key, ex.api_version) for _, ex in responses})} api versions")


# ---- KIP-951: NodeEndpoints in a Produce v10 response -------------------------------------------


def compact_str(s):
    return uvarint(len(s) + 1) + s.encode()


def produce_v10_null_records(corr_id, topic, partition):
    """Produce v10 (flexible) for one partition with null records: enough for a broker that is
    not the leader to answer NOT_LEADER_OR_FOLLOWER with the leader's NodeEndpoints."""
    cid = b"kgate-test"
    header = struct.pack(">hhih", PRODUCE, 10, corr_id, len(cid)) + cid + b"\x00"
    body = (b"\x00" + struct.pack(">hi", 1, 5000) + uvarint(2) + compact_str(topic) + uvarint(2)
            + struct.pack(">i", partition) + b"\x00" + b"\x00" + b"\x00" + b"\x00")
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def produce_v10_first_error(resp, topic):
    """Error code of the first partition in a Produce v10 response."""
    off = 4  # correlation id
    _, off = read_uvarint(resp, off)  # header tagged fields (none expected)
    n_topics, off = read_uvarint(resp, off)
    assert n_topics - 1 == 1
    name_len, off = read_uvarint(resp, off)
    assert resp[off:off + name_len - 1] == topic.encode()
    off += name_len - 1
    n_parts, off = read_uvarint(resp, off)
    assert n_parts - 1 == 1
    _, error = struct.unpack(">ih", resp[off:off + 6])
    return error


def partition_leader(bootstrap, topic, partition):
    out = run(["kcat", "-L", "-b", bootstrap, "-t", topic, "-X", "broker.address.family=v4"],
              60).stdout.decode()
    m = re.search(rf"partition {partition}, leader (\d+),", out)
    assert m, out
    return int(m.group(1))


def test_produce_v10_node_endpoints_carry_kgate_addresses(kgate):
    """Runs wherever the backend broker itself (asked directly, without kgate) answers Produce
    v10: kgate must then offer v10 too, so a gateway that offers less fails here, not skips."""
    from test_node_clients import advertised_versions, backend_versions
    backend = backend_versions(kgate.backend).get("Produce")
    if not backend or backend[1] < 10:
        pytest.skip(f"the librdkafka {kgate.backend.version} mock broker itself offers Produce "
                    f"{backend}: no NodeEndpoints (KIP-951, v10+) to rewrite")
    offered = advertised_versions(kgate.bootstrap).get("Produce")
    assert offered and offered[1] >= 10, (
        f"the backend offers Produce {backend}, the gateway only {offered}: clients lose v10 "
        f"(KIP-951 NodeEndpoints)")
    leader = partition_leader(kgate.bootstrap, "addr3", 0)
    follower = next(n for n in (1, 2, 3) if n != leader)
    host, port = kgate.broker_address(follower).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.settimeout(10)
        s.sendall(produce_v10_null_records(7, "addr3", 0))
        resp = recv_frame(s)
    assert struct.unpack(">i", resp[:4])[0] == 7
    assert produce_v10_first_error(resp, "addr3") == 6, "expected NOT_LEADER_OR_FOLLOWER"

    leader_host, leader_port = kgate.broker_address(leader).rsplit(":", 1)
    # NodeEndpoints entry: node id, compact host string, port.
    entry = struct.pack(">i", leader) + compact_str(leader_host) + struct.pack(">i", int(leader_port))
    assert entry in resp, f"no NodeEndpoints entry for node {leader} at {leader_host}:{leader_port}"
    if not kgate.direct:
        assert not backend_address_hits(resp, kgate.backend.hostports)
