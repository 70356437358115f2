"""KafkaJS and @platformatic/kafka through kgate: produce, consumer group, restart from committed
offsets. The Node scripts in node/ print one JSON object that these tests assert on."""

import json
import os
import re
import socket
import uuid

import pytest

from kghelpers import (INTEGRATION_DIR, api_versions_v0, load_api_names, parse_api_versions_v0,
                       round_trip, run)

NODE_DIR = os.path.join(INTEGRATION_DIR, "node")
PLATFORMATIC_APIS = os.path.join(INTEGRATION_DIR, "node_modules", "@platformatic", "kafka",
                                 "dist", "apis")


def run_node(script, args, timeout=240):
    modules = os.path.join(INTEGRATION_DIR, "node_modules")
    if not os.path.isdir(modules):
        pytest.fail("tests/integration/node_modules missing: run scripts/test-setup")
    cp = run(["node", os.path.join(NODE_DIR, script), json.dumps(args)], timeout=timeout)
    return json.loads(cp.stdout.decode().strip().splitlines()[-1])


def advertised_versions(bootstrap):
    """What the gateway (or broker) at BOOTSTRAP ("host:port") tells clients in ApiVersions:
    {api name: (min, max)}."""
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.settimeout(10)
        error, apis = parse_api_versions_v0(round_trip(s, api_versions_v0(1)))
    assert error == 0, f"ApiVersions v0 error {error}"
    names = load_api_names()
    return {names.get(k, str(k)): v for k, v in apis.items()}


def backend_versions(dev_cluster):
    """What the backend broker itself offers, asked directly (no kgate in between): what a skip
    may be decided from, since kgate's own answer is what the tests check."""
    host, port = dev_cluster.hostports[0]
    return advertised_versions(f"{host}:{port}")


def assert_group_run(out, prefix, count, count_after, gateway, partitions=3):
    first = out["consumed"]
    values = {r["value"] for r in first["records"]}
    assert values == {f"{prefix}-{i}" for i in range(count)}, \
        f"group consumed {len(values)} distinct of {count}"
    # Both members were in one generation: each got partitions, or one got only part of them.
    # (librdkafka's mock cluster answers a follower's SyncGroup that arrives after the leader's
    # with INVALID_REQUEST, so a follower may drop out again before it receives anything.)
    assigned = {j["member"] for j in first["joins"] if j["partitions"]}
    partial = [j for j in first["joins"] if 0 < len(j["partitions"]) < partitions]
    assert assigned == {"member-0", "member-1"} or partial, \
        f"the group never had two members: {first['joins']}"

    # A new member of the same group resumes from the committed offsets: only the new messages.
    after = out["consumed_after"]
    after_values = {r["value"] for r in after["records"]}
    expected_after = {f"{prefix}-{i}" for i in range(count, count + count_after)}
    assert after_values == expected_after, (
        f"after restart: {len(after_values & expected_after)} of {count_after} new messages, "
        f"{len(after_values - expected_after)} re-read from before the commit")

    brokers = {(b["nodeId"], f'{b["host"]}:{b["port"]}') for b in out["cluster"]["brokers"]}
    assert len(brokers) == 3, brokers
    for node_id, address in brokers:
        assert address == gateway.broker_address(node_id)


@pytest.mark.guard(300)
def test_kafkajs_produce_consume_group(kgate):
    count, count_after = 600, 200
    out = run_node("kafkajs_client.cjs", {"bootstrap": kgate.bootstrap, "topic": "kjs3",
                                          "count": count, "count_after": count_after, "partitions": 3,
                                          "group": "kjs-" + uuid.uuid4().hex[:8]})
    assert sum(1 for _ in out["produced"]) > 0
    print("kafkajs phases (s since start):", out["seconds"])
    assert_group_run(out, "kafkajs", count, count_after, kgate)


# ---- @platformatic/kafka ----------------------------------------------------------------------

# Which Kafka APIs each step of platformatic_client.mjs uses.
PLATFORMATIC_STEP_APIS = {
    "metadata": ["ApiVersions", "Metadata"],
    "produce": ["ApiVersions", "Metadata", "Produce"],
    "group": ["ApiVersions", "Metadata", "Produce", "FindCoordinator", "JoinGroup", "SyncGroup",
              "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch", "ListOffsets", "Fetch"],
}


def platformatic_versions():
    """The version range of each API @platformatic/kafka implements, read from its modules
    (dist/apis/<area>/<api-name>-v<N>.js)."""
    ranges = {}
    for area in os.listdir(PLATFORMATIC_APIS):
        path = os.path.join(PLATFORMATIC_APIS, area)
        if not os.path.isdir(path):
            continue
        for fn in os.listdir(path):
            m = re.fullmatch(r"([a-z-]+)-v(\d+)\.js", fn)
            if not m:
                continue
            name = "".join(w.capitalize() for w in m.group(1).split("-"))
            lo, hi = ranges.get(name, (int(m.group(2)), int(m.group(2))))
            ranges[name] = (min(lo, int(m.group(2))), max(hi, int(m.group(2))))
    return ranges


def unusable_apis(step, client, server, skip=()):
    """The APIs of STEP (but SKIP) for which SERVER offers no version CLIENT implements, named
    with both ranges."""
    missing = []
    for api in PLATFORMATIC_STEP_APIS[step]:
        if api in skip:
            continue
        c, s = client.get(api), server.get(api)
        if c is None or s is None or s[1] < c[0] or s[0] > c[1]:
            missing.append(f"{api} (client {c}, broker {s})")
    return missing


@pytest.mark.guard(300)
def test_platformatic_produce_consume_group(kgate):
    """@platformatic/kafka supports Kafka >= 3.5 only and never falls back to older API versions.
    Which steps can run is decided from the backend broker itself (asked directly): a step whose
    API versions the mock broker lacks is skipped with those versions named. Every step the
    backend can serve must work through the gateway, which must therefore offer the versions
    too (a gateway offering less fails the test)."""
    client = platformatic_versions()
    backend = backend_versions(kgate.backend)
    runnable, skipped = [], {}
    for step in ("metadata", "produce", "group"):
        # ApiVersions ends at kgate (it answers with its own range), so the broker's own
        # ApiVersions range limits nothing: kgate must offer what the client needs.
        missing = unusable_apis(step, client, backend, skip=("ApiVersions",))
        if missing:
            skipped[step] = missing
        else:
            runnable.append(step)
    if not runnable:
        pytest.skip(f"the librdkafka {kgate.backend.version} mock broker offers no API version "
                    f"@platformatic/kafka can use: {skipped}")
    offered = advertised_versions(kgate.bootstrap)
    lost = {step: unusable_apis(step, client, offered) for step in runnable}
    assert not any(lost.values()), (
        f"the backend serves {runnable} for @platformatic/kafka, the gateway does not "
        f"offer: {lost}")

    count, count_after = 300, 100
    out = run_node("platformatic_client.mjs", {
        "bootstrap": kgate.bootstrap, "topic": "pfk3", "count": count,
        "count_after": count_after, "partitions": 3, "group": "pfk-" + uuid.uuid4().hex[:8], "steps": runnable})
    assert not out["errors"], out["errors"]
    if "metadata" in runnable:
        brokers = {(b["nodeId"], f'{b["host"]}:{b["port"]}') for b in out["cluster"]["brokers"]}
        assert len(brokers) == 3
        for node_id, address in brokers:
            assert address == kgate.broker_address(node_id)
    if "produce" in runnable:
        from test_confluent import consume_all
        records = consume_all(kgate.bootstrap, "pfk3", 3, count)
        assert {v.decode() for _, _, v in records} == {f"platformatic-{i}" for i in range(count)}
    if "group" in runnable:
        assert_group_run(out, "platformatic", count, count_after, kgate)
    if skipped:
        pytest.skip(f"ran {runnable}; the librdkafka {kgate.backend.version} mock broker "
                    f"lacks: {skipped}")
