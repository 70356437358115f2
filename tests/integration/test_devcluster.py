"""`kgate dev-cluster` (Debian's librdkafka 2.0.2) and build/deps/dev-cluster-2.12: command line,
bootstrap line, clean stop on SIGINT and SIGTERM."""

import signal
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
