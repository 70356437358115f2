"""`kgate dev-cluster` (Debian's librdkafka 2.0.2) and build/deps/dev-cluster-2.12: command line,
bootstrap line, clean stop on SIGINT and SIGTERM."""

import signal
import time
import subprocess

import pytest

from kghelpers import devcluster_command, parse_hostports, run

VERSIONS = ["2.0.2", "2.12"]


def devcluster_argv_for(version):
    try:
        return devcluster_command(version)
    except FileNotFoundError as e:
        pytest.fail(str(e))


@pytest.mark.parametrize("version", VERSIONS)
def test_help_and_bad_arguments(version):
    argv = devcluster_argv_for(version)
    out = run(argv + ["--help"], 10)
    assert b"--brokers" in out.stdout and b"--topic" in out.stdout
    for bad, needle in ((["--brokers", "0"], b"--brokers"), (["--topic", "nopartitions"], b"name:partitions"),
                        (["--topic", "t:0"], b"partitions"), (["--bogus"], b"unknown argument")):
        cp = run(argv + bad, 10, check=False)
        assert cp.returncode != 0, bad
        assert needle in cp.stderr, (bad, cp.stderr)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_bootstrap_line_and_clean_stop(version, sig):
    proc = subprocess.Popen(devcluster_argv_for(version) + ["--brokers", "2", "--topic", "x:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode().strip()
        hostports = parse_hostports(line)
        assert len(hostports) == 2 and all(h == "127.0.0.1" and p > 0 for h, p in hostports)
        out = run(["kcat", "-L", "-b", line, "-t", "x", "-X", "broker.address.family=v4"], 30)
        assert b'topic "x" with 2 partitions' in out.stdout
        proc.send_signal(sig)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"stopped" in proc.stderr.read()


@pytest.mark.parametrize("version", VERSIONS)
def test_rebalance_delay_bad_values(version):
    argv = devcluster_argv_for(version)
    for bad in ("-1", "x", "", "300001"):
        cp = run(argv + ["--group-initial-rebalance-delay-ms", bad], 10, check=False)
        assert cp.returncode != 0, bad
        assert b"--group-initial-rebalance-delay-ms must be 0..300000" in cp.stderr, cp.stderr


def test_rebalance_delay_202_cannot():
    """Debian's librdkafka 2.0.2 mock has its 3000 ms built in: another value is refused with the
    reason, its own value is accepted."""
    argv = devcluster_argv_for("2.0.2")
    cp = run(argv + ["--group-initial-rebalance-delay-ms", "0"], 10, check=False)
    assert cp.returncode == 1
    assert b"has 3000 ms built in and no setting for it" in cp.stderr, cp.stderr
    proc = subprocess.Popen(argv + ["--group-initial-rebalance-delay-ms", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert parse_hostports(proc.stdout.readline().decode().strip())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def first_assignment(bootstrap, group, seconds):
    """Whether a lone consumer of GROUP gets its partitions within SECONDS."""
    from confluent_kafka import Consumer
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
                  "broker.address.family": "v4"})
    c.subscribe(["x"], on_assign=lambda _c, parts: assigned.extend(parts))
    try:
        deadline = time.monotonic() + seconds
        while not assigned and time.monotonic() < deadline:
            c.poll(0.2)
        return bool(assigned)
    finally:
        c.close()


@pytest.mark.parametrize("delay_ms,assigned_within_10s", [(300000, False), (0, True)])
def test_rebalance_delay_applies(delay_ms, assigned_within_10s):
    """The 2.12 mock waits group.initial.rebalance.delay.ms before the first rebalance of an
    empty group: with 5 minutes no consumer can have its partitions after 10 s; with 0 it gets
    them (waited for up to 60 s)."""
    proc = subprocess.Popen(devcluster_argv_for("2.12") + [
        "--brokers", "1", "--topic", "x:2", "--group-initial-rebalance-delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        bootstrap = proc.stdout.readline().decode().strip()
        assert parse_hostports(bootstrap)
        got = first_assignment(bootstrap, f"delay-{delay_ms}", 10 if not assigned_within_10s
                               else 60)
        assert got == assigned_within_10s, (delay_ms, got)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert f"group.initial.rebalance.delay.ms {delay_ms}".encode() in proc.stderr.read()
