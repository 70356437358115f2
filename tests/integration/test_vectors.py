"""Captures request/response frames between real clients and the dev clusters for the protocol
decoder's unit tests (tests/vectors/, layout in tests/vectors/README.md).

The clients talk to the dev cluster *directly* (no kgate: the vectors are what real peers send)
through a relay on 127.0.0.2. So that every broker connection passes through it, the relay
changes "127.0.0.1" to "127.0.0.2" (same length) in the broker addresses of Metadata and
FindCoordinator responses it passes on; the bytes recorded are the broker's, unchanged.

By default the frames go to a temporary directory and the test checks what was captured;
KGATE_UPDATE_VECTORS=1 also writes the files missing from tests/vectors/ (delete a client's
directory first to recapture it).
"""

import json
import os
import re
import struct
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from kghelpers import INTEGRATION_DIR, ROOT, Relay, load_api_names, run

VECTORS_DIR = os.path.join(ROOT, "tests", "vectors")
RELAY_HOST = "127.0.0.2"
MAX_FRAME = 8192
ADDRESS_APIS = {3, 10, 60}  # Metadata, FindCoordinator, DescribeCluster
TOPIC = "vec3"
UPDATE = os.environ.get("KGATE_UPDATE_VECTORS") == "1"
FILE_RE = re.compile(r"^([A-Za-z]+)_v(\d+)_(req|resp)(_unsupported)?\.bin$")


def point_clients_at_relay(api_key, api_version, frame):
    if api_key in ADDRESS_APIS:
        return frame.replace(b"127.0.0.1", RELAY_HOST.encode())
    return frame


def drive_librdkafka_202(bootstrap, group):
    run(["kcat", "-L", "-b", bootstrap, "-X", "broker.address.family=v4"], 60)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "broker.address.family": "v4"})
    for i in range(20):
        p.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    t = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "transactional.id": "vec-" + uuid.uuid4().hex[:6]})
    t.init_transactions(30)
    t.begin_transaction()
    t.produce(TOPIC, value=b"txn")
    t.commit_transaction(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "broker.address.family": "v4",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([TOPIC])
    got = 0
    for _ in range(150):
        got += sum(1 for m in c.consume(50, 0.2) if not m.error())
        if got >= 21:
            break
    c.commit(asynchronous=False)
    c.close()


def drive_librdkafka_212(bootstrap, group):
    client = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")
    run([client, "produce", "-b", bootstrap, "-t", TOPIC, "-n", "20"], 60)
    run([client, "consume", "-b", bootstrap, "-t", TOPIC, "-g", group, "-n", "20"], 90)


def drive_kafka_python(bootstrap, group):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000)
    for i in range(20):
        p.send(TOPIC, key=b"k%d" % i, value=b"kpy-%d" % i)
    p.flush(30)
    p.close(10)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    admin.describe_cluster()
    admin.close()
    c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", consumer_timeout_ms=10000,
                      request_timeout_ms=15000)
    for n, _ in enumerate(c, 1):
        if n >= 20:
            break
    c.commit()
    c.close()


def drive_kafkajs(bootstrap, group):
    args = {"bootstrap": bootstrap, "topic": TOPIC, "count": 20, "count_after": 5,
            "partitions": 3, "group": group}
    run(["node", os.path.join(INTEGRATION_DIR, "node", "kafkajs_client.cjs"), json.dumps(args)],
        180)


CLIENTS = {
    "librdkafka-2.0.2": drive_librdkafka_202,
    "librdkafka-2.12": drive_librdkafka_212,
    "kafka-python-2.0.2": drive_kafka_python,
    "kafkajs-2.2.4": drive_kafkajs,
}
# APIs every client above must have used (all produce, consume in a group and commit).
EXPECTED_APIS = {"ApiVersions", "Metadata", "Produce", "Fetch", "FindCoordinator", "JoinGroup",
                 "SyncGroup", "OffsetCommit"}


def is_unsupported_api_versions(ex):
    # ApiVersions responses always use response header v0: the error code follows the
    # correlation id. UNSUPPORTED_VERSION (35) answers come in the v0 body layout.
    return ex.api_key == 18 and struct.unpack(">h", ex.response[4:6])[0] == 35


def choose_exchanges(exchanges, names):
    """One exchange per (api, version, unsupported?): the largest response of at most MAX_FRAME
    bytes whose request also fits, else the smallest."""
    groups = {}
    for ex in exchanges:
        if ex.response is None:
            continue
        key = (names.get(ex.api_key, f"Api{ex.api_key}"), ex.api_version,
               is_unsupported_api_versions(ex))
        groups.setdefault(key, []).append(ex)
    chosen = {}
    for key, exs in groups.items():
        fitting = [e for e in exs if len(e.request) <= MAX_FRAME and len(e.response) <= MAX_FRAME]
        chosen[key] = (max(fitting, key=lambda e: len(e.response)) if fitting
                       else min(exs, key=lambda e: len(e.request) + len(e.response)))
    return chosen


def write_vectors(directory, chosen, broker, only_missing):
    os.makedirs(directory, exist_ok=True)
    manifest_path = os.path.join(directory, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    written = []
    for (name, version, unsupported), ex in sorted(chosen.items()):
        suffix = "_unsupported" if unsupported else ""
        files = {"req": f"{name}_v{version}_req.bin", "resp": f"{name}_v{version}_resp{suffix}.bin"}
        if only_missing and all(os.path.exists(os.path.join(directory, f)) for f in files.values()):
            continue
        for direction, frame in (("req", ex.request), ("resp", ex.response)):
            fn = files[direction]
            with open(os.path.join(directory, fn), "wb") as f:
                f.write(frame)
            manifest[fn] = {"api_key": ex.api_key, "api_version": ex.api_version,
                            "direction": direction, "correlation_id": ex.corr_id,
                            "broker": broker, "bytes": len(frame),
                            "unsupported_version_answer": bool(unsupported and direction == "resp")}
            written.append(fn)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return written


@pytest.mark.guard(480)
def test_capture_client_vectors(dev_cluster, tmp_path):
    names = load_api_names()
    routes = {port: (host, port) for host, port in dev_cluster.hostports}
    bootstrap = f"{RELAY_HOST}:{dev_cluster.hostports[0][1]}"
    broker = f"librdkafka-mock-{dev_cluster.version}"
    summary = {}
    for client, drive in CLIENTS.items():
        relay = Relay(RELAY_HOST, routes, rewrite_response=point_clients_at_relay).start()
        try:
            drive(bootstrap, f"vec-{client}-{uuid.uuid4().hex[:6]}")
        finally:
            relay.stop()
        exchanges = [ex for _, ex in relay.snapshot()[0]]
        chosen = choose_exchanges(exchanges, names)
        used = {name for name, _, _ in chosen}
        missing = EXPECTED_APIS - used
        assert not missing, f"{client}: no {sorted(missing)} captured (saw {sorted(used)})"
        for ex in exchanges:
            # The recorded request header names the API and version the response belongs to.
            assert struct.unpack(">hhi", ex.request[:8]) == (ex.api_key, ex.api_version, ex.corr_id)
            if ex.response is not None:
                assert struct.unpack(">i", ex.response[:4])[0] == ex.corr_id
        write_vectors(str(tmp_path / client), chosen, broker, only_missing=False)
        if UPDATE:
            write_vectors(os.path.join(VECTORS_DIR, client), chosen, broker, only_missing=True)
        summary[client] = sorted(f"{n}v{v}" for n, v, _ in chosen)
    print(json.dumps(summary, indent=1))


def test_committed_vectors_are_consistent():
    """Every committed vector file is named after the API and version its header carries, and
    every client the capture drives has its committed vectors (the unit tests decode them)."""
    assert os.path.isdir(VECTORS_DIR), f"{VECTORS_DIR} missing: the vectors are committed"
    missing = [c for c in CLIENTS if not os.path.isfile(os.path.join(VECTORS_DIR, c,
                                                                     "manifest.json"))]
    assert not missing, f"no committed vectors for {missing} in {VECTORS_DIR}"
    names = {v: k for k, v in load_api_names().items()}
    checked = 0
    for client in sorted(os.listdir(VECTORS_DIR)):
        directory = os.path.join(VECTORS_DIR, client)
        if not os.path.isdir(directory):
            continue
        with open(os.path.join(directory, "manifest.json")) as f:
            manifest = json.load(f)
        for fn in sorted(os.listdir(directory)):
            if fn == "manifest.json":
                continue
            m = FILE_RE.match(fn)
            assert m, f"{client}/{fn}: unexpected name"
            api, version, direction = m.group(1), int(m.group(2)), m.group(3)
            with open(os.path.join(directory, fn), "rb") as f:
                frame = f.read()
            assert len(frame) <= 64 * 1024, f"{client}/{fn}: {len(frame)} bytes"
            entry = manifest[fn]
            assert (entry["api_key"], entry["api_version"], entry["direction"]) == \
                (names[api], version, direction)
            if direction == "req":
                assert struct.unpack(">hhi", frame[:8]) == \
                    (names[api], version, entry["correlation_id"]), fn
            else:
                assert struct.unpack(">i", frame[:4])[0] == entry["correlation_id"], fn
            checked += 1
    assert checked > 0
