"""kgate leaves the old side's consumer groups on its clients' behalf at a switch (issue 10, item
7a; src/route/kg_leave.c).

A switch closes every client connection to the old side, but the old side's coordinator keeps
the members kgate's clients had there until their sessions time out. A failback within that
time finds the group waiting for them. With switch.leave_groups (the default) kgate sends
LeaveGroup for them to the old side in the background.

The scenario: a kafka-python consumer group (session.timeout.ms 30 s) reads east, the virtual
cluster fails over to west, the group reads there, and fails back to east within a few seconds.
Checked on the clusters themselves (never through kgate): the group consumes everything on east
again, and its member on the old side is gone there (with leave_groups: false, still there). The
librdkafka mock cluster has no DescribeGroups; the membership is asked with a Heartbeat at
generation -1 straight to the group's coordinator: the mock answers UNKNOWN_MEMBER_ID for a
member it does not know and ILLEGAL_GENERATION for one it has, and a Heartbeat with an error
does not refresh the member's session. The time from the failback call to the group's first
record from east is printed with and without, never asserted."""

import logging
import socket
import struct
import time

import pytest

from fohelpers import metric, print_flush, tail, wait_for
from kghelpers import encode_request, round_trip

TOPIC = "fo-misc"  # 3 partitions on both clusters
GROUP = "fo-leave"
UNKNOWN_MEMBER_ID = 25
ILLEGAL_GENERATION = 22


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _connect(hostport):
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    return s


def membership_error(cluster, group, member_id):
    """The error a Heartbeat of MEMBER_ID at generation -1 gets from GROUP's coordinator on
    CLUSTER (asked directly): UNKNOWN_MEMBER_ID when the group has no such member."""
    with _connect(cluster.bootstrap.split(",")[0]) as s:
        resp = round_trip(s, encode_request(10, 0, 1, _str(group)))  # FindCoordinator v0
    error, _node, hlen = struct.unpack(">hih", resp[4:12])
    assert error == 0, f"{cluster.name}: FindCoordinator({group}) error {error}"
    host = resp[12:12 + hlen].decode()
    (port,) = struct.unpack(">i", resp[12 + hlen:16 + hlen])
    with _connect(f"{host}:{port}") as s:
        body = _str(group) + struct.pack(">i", -1) + _str(member_id)
        resp = round_trip(s, encode_request(12, 0, 2, body))  # Heartbeat v0
    (error,) = struct.unpack(">h", resp[4:6])
    return error


class Consumer:
    """A kafka-python group member through kgate, recording what it receives and when."""

    def __init__(self, bootstrap):
        from kafka import KafkaConsumer
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # every failed heartbeat at ERROR
        self.c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=GROUP,
                               auto_offset_reset="earliest", session_timeout_ms=30000,
                               heartbeat_interval_ms=3000, auto_commit_interval_ms=500)
        self.got = []  # (time, value)

    def poll(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for records in self.c.poll(timeout_ms=200).values():
                self.got += [(time.time(), r.value.decode()) for r in records]

    def until(self, want, seconds, what):
        deadline = time.monotonic() + seconds
        while not want <= self.values() and time.monotonic() < deadline:
            self.poll(0.2)
        missing = want - self.values()
        assert not missing, f"{what}: {len(missing)} records never received, e.g. {sorted(missing)[:5]}"

    def values(self):
        return {v for _, v in self.got}

    def member_id(self):
        # kafka-python keeps the member id the coordinator gave it here (no public accessor).
        return self.c._coordinator._generation.member_id

    def close(self):
        self.c.close()


@pytest.mark.guard(240)
@pytest.mark.parametrize("leave", [True, False], ids=["leave_groups", "no-leave_groups"])
def test_failback_within_the_session_timeout(leave, make_clusters, make_kgate):
    clusters = make_clusters()
    east, west = clusters["east"], clusters["west"]
    east.fill(TOPIC, 10, prefix="east-a")
    west.fill(TOPIC, 10, prefix="west")
    extra = [] if leave else ["switch: { leave_groups: false }"]
    kg = make_kgate(clusters, extra_lines=extra)
    consumer = Consumer(kg.bootstrap("default"))
    try:
        east_a = {f"east-a-{p}-{i}" for p in range(3) for i in range(10)}
        consumer.until(east_a, 60, "the group on east")
        consumer.c.commit()
        east_member = consumer.member_id()
        assert membership_error(east, GROUP, east_member) == ILLEGAL_GENERATION, \
            "the probe does not see the group's member on east"

        reply, _, _ = kg.switch("default", to="west", reason="leave: failover")
        assert reply.status == 200 and reply.json["changed"], reply
        if leave:
            assert reply.json["leave_groups"] == {"members": 1}, reply.json
            wait_for(lambda: membership_error(east, GROUP, east_member) == UNKNOWN_MEMBER_ID,
                     30, what="kgate to leave the group's member on east")
        else:
            assert "leave_groups" not in reply.json, reply.json
            assert membership_error(east, GROUP, east_member) == ILLEGAL_GENERATION
        west_values = {f"west-{p}-{i}" for p in range(3) for i in range(10)}
        consumer.until(west_values, 90, "the group on west")
        west_member = consumer.member_id()

        # Back within a few seconds: well inside the 30 s session of the member on east.
        reply, t_call, _ = kg.switch("default", failback=True, reason="leave: failback")
        assert reply.status == 200 and reply.json["changed"], reply
        on_west = membership_error(west, GROUP, west_member)
        east.fill(TOPIC, 10, prefix="east-b")
        east_b = {f"east-b-{p}-{i}" for p in range(3) for i in range(10)}
        consumer.until(east_b, 120, "the group on east after the failback")
        first = min(t for t, v in consumer.got if v.startswith("east-b-") or
                    (v.startswith("east-a-") and t >= t_call))
        reread = sorted(v for t, v in consumer.got if t >= t_call and v.startswith("east-a-"))
        print_flush(f"[leave_groups: {str(leave).lower()}] failback -> first record from east "
                    f"{(first - t_call) * 1000:.0f} ms after the call; east records read again: "
                    f"{len(reread)}")
        if leave:
            wait_for(lambda: membership_error(west, GROUP, west_member) == UNKNOWN_MEMBER_ID,
                     30, what="kgate to leave the group's member on west")
            samples = kg.metrics()
            assert metric(samples, "kgate_switch_group_leaves_total", vcluster="default",
                          result="left") == 2, tail(kg.log())
            assert metric(samples, "kgate_switch_group_leaves_total", vcluster="default",
                          result="failed") == 0
        else:
            assert on_west == ILLEGAL_GENERATION, \
                f"without leave_groups the member on west should still be there: {on_west}"
            assert "kgate_switch_group_leaves_total" not in {n for n, _, _ in kg.metrics()}
    finally:
        consumer.close()
