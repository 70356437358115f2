"""systemd's notify protocol (deploy/kgate.service, Type=notify), played by the test: a unix
datagram socket as $NOTIFY_SOCKET (a path, and an abstract "@name"), $WATCHDOG_USEC set. kgate
must send READY=1 once it serves, WATCHDOG=1 pings while it runs, RELOADING=1 then READY=1 around
a SIGHUP, and STOPPING=1 when SIGTERM starts the drain; and it runs the same with no socket."""

import os
import signal
import socket
import time

import pytest

import kghelpers
from kghelpers import (KGATE_PORTS, DevCluster, Proc, free_port_range, kgate_config_yaml,
                       wait_port_open)

pytestmark = pytest.mark.kgate_only


@pytest.fixture
def cluster(tmp_path, private_kgate):
    dc = DevCluster("2.0.2", tmp_path, ["sd1:1"], brokers=1)
    yield dc
    dc.stop()


class Notifications:
    """The messages kgate sends to the socket, in order."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.seen = []

    def wait(self, state, timeout=30):
        """Reads until a message containing the line STATE arrives; returns its index."""
        deadline = time.monotonic() + timeout
        for i, msg in enumerate(self.seen):
            if state in msg.split("\n"):
                return i
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.seen.append(msg)
            if state in msg.split("\n"):
                return len(self.seen) - 1
        raise AssertionError(f"no {state} within {timeout}s; got {self.seen}")

    def close(self):
        self.sock.close()


def start(tmp_path, cluster, env):
    base = free_port_range(KGATE_PORTS + 1)
    config = tmp_path / "kgate.yaml"
    config.write_text(kgate_config_yaml({"east": cluster.bootstrap},
                                        [("default", base, "east", None)], base + KGATE_PORTS,
                                        str(tmp_path / "state.db")))
    proc = Proc([kghelpers.KGATE_BIN, "serve", "-c", str(config)], str(tmp_path / "kgate.stderr"),
                stdout=None, env=dict(os.environ, **env))
    return proc, base


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_watchdog_reload_stopping(tmp_path, cluster, abstract):
    name = f"kgate-test-{os.getpid()}-{time.monotonic_ns()}"
    address = "\0" + name if abstract else str(tmp_path / "notify.sock")
    notes = Notifications(address)
    env = {"NOTIFY_SOCKET": "@" + name if abstract else address, "WATCHDOG_USEC": "3000000"}
    proc, base = start(tmp_path, cluster, env)
    try:
        ready = notes.wait("READY=1")
        # READY=1 comes once kgate serves: its ports take connections by then.
        assert wait_port_open("127.0.0.1", base, 1, alive=proc.alive)
        first = notes.wait("WATCHDOG=1")
        assert first > ready
        notes.seen = notes.seen[first + 1:]
        notes.wait("WATCHDOG=1")  # and again: pings go on while it runs
        proc.popen.send_signal(signal.SIGHUP)
        reloading = notes.wait("RELOADING=1")
        assert notes.wait("READY=1") > reloading
        proc.popen.send_signal(signal.SIGTERM)
        assert notes.wait("STOPPING=1") >= 0
        assert proc.popen.wait(60) == 0, proc.stderr_text()[-3000:]
        assert "systemd watchdog: pinging once a second" in proc.stderr_text()
    finally:
        if proc.alive():
            proc.terminate()
        notes.close()


def test_runs_the_same_without_systemd(tmp_path, cluster):
    env = {k: "" for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc, base = start(tmp_path, cluster, env)
    try:
        assert wait_port_open("127.0.0.1", base, 20, alive=proc.alive), proc.stderr_text()
    finally:
        assert proc.terminate() == 0
    assert "NOTIFY_SOCKET" not in proc.stderr_text()
    assert "watchdog" not in proc.stderr_text()
