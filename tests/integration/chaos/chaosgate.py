"""kgate with chaos for the tests: DevCluster (librdkafka's mock cluster), ChaosGate (kgate in
front of it, with any number of virtual clusters, an optional `chaos:` list in its file, and the
admin API at hand), and the kgate binary they run.

A plain module (not conftest.py) so that test modules can import it by a unique name.

KGATE_BIN (default build/kgate) is the kgate under test. The session works on a private copy
(private_kgate()): other work rebuilding build/kgate mid-run must not make tests fail."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from kghelpers import ROOT, Proc, free_port_range, wait_for, wait_port_open

DIRECT = os.environ.get("KGATE_TEST_DIRECT") == "1"
KGATE_BIN = os.environ.get("KGATE_BIN", os.path.join(ROOT, "build", "kgate"))
DEV_CLUSTER_212 = os.path.join(ROOT, "build", "deps", "dev-cluster-2.12")

CLUSTER_VERSIONS = [v.strip() for v in os.environ.get("KGATE_CHAOS_CLUSTERS", "2.0.2").split(",")
                    if v.strip()]
# Each test has its own dev cluster, so tests only need distinct topics inside one test.
CHAOS_TOPICS = ["a6:6", "b6:6", "a3:3", "b3:3", "a1:1", "b1:1", "c1:1",
                "orders.eu:3", "orders.us:3", "xorders:3"]
VC_PORTS = 34  # bootstrap + node ids 0..31 (the default node_ids) + one spare


# ---------------------------------------------------------------------------------------------
# Binaries and dev clusters


def _works(binary):
    try:
        return subprocess.run([binary, "version"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10).returncode == 0
    except OSError:
        return False


def private_kgate(directory, wait=120):
    """Copies KGATE_BIN into DIRECTORY (waiting up to WAIT seconds while a build replaces it)
    and makes the copy the binary every later DevCluster and ChaosGate runs."""
    global KGATE_BIN
    deadline = time.monotonic() + wait
    while not _works(KGATE_BIN):
        if time.monotonic() > deadline:
            pytest.fail(f"{KGATE_BIN} is not a working kgate (make build, or set KGATE_BIN)")
        time.sleep(1)
    copy = os.path.join(str(directory), "kgate")
    shutil.copy2(KGATE_BIN, copy)
    KGATE_BIN = copy
    return copy


class DevCluster:
    """A running dev cluster: .bootstrap "host:port,...". Version "2.0.2" is `kgate dev-cluster`
    (Debian's librdkafka), "2.12" the build scripts/test-setup makes (a modern-protocol broker)."""

    def __init__(self, version, tmp_path, topics=CHAOS_TOPICS, brokers=3, name="east"):
        if version == "2.0.2":
            argv = [KGATE_BIN, "dev-cluster"]
        elif version == "2.12":
            if not os.access(DEV_CLUSTER_212, os.X_OK):
                pytest.fail(f"{DEV_CLUSTER_212} missing: run scripts/test-setup")
            argv = [DEV_CLUSTER_212]
        else:
            pytest.fail(f"unknown dev cluster version {version!r}")
        argv += ["--brokers", str(brokers)]
        for t in topics:
            argv += ["--topic", t]
        self.version = version
        self.proc = Proc(argv, os.path.join(str(tmp_path), f"dev-cluster-{name}.stderr"))
        self.bootstrap = self.proc.read_stdout_line(timeout=20)

    def stop(self):
        rc = self.proc.terminate()
        assert rc == 0, f"dev-cluster exit code {rc}; stderr:\n{self.proc.stderr_text()[-3000:]}"


# ---------------------------------------------------------------------------------------------
# kgate with chaos


class AdminError(AssertionError):
    pass


def _yaml_value(value):
    # JSON is YAML flow syntax; rules go into the file exactly as the API would receive them.
    return json.dumps(value)


class ChaosGate:
    """kgate serving VCLUSTERS (name -> cluster name) for the dev cluster `east`.

    .bootstrap            the first vcluster's bootstrap address
    .vc_bootstrap(name)   another vcluster's
    .broker_port(node)    where clients reach broker NODE of the first vcluster
    .add(rule) / .remove(id) / .rules() / .rule(id) / .post(rule) -> (status, body)
    """

    def __init__(self, cluster, tmp_path, vclusters=("default",), chaos=None, extra=""):
        self.kgate_bin = KGATE_BIN
        self.cluster = cluster
        self.tmp_path = str(tmp_path)
        self.vclusters = list(vclusters)
        self.extra = extra
        need = VC_PORTS * len(self.vclusters) + 1
        self.base = free_port_range(need)
        self.ports = {vc: self.base + i * VC_PORTS for i, vc in enumerate(self.vclusters)}
        self.admin_port = self.base + need - 1
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.config_path = os.path.join(self.tmp_path, "kgate.yaml")
        self.state_path = os.path.join(self.tmp_path, "kgate-state.db")
        self.write_config(chaos)
        self.proc = None
        self.start()

    # -- process

    def write_config(self, chaos=None):
        lines = ["listen: 127.0.0.1", "advertised_host: 127.0.0.1", "clusters:",
                 f'  east: {{ bootstrap: "{self.cluster.bootstrap}" }}', "vclusters:"]
        for vc in self.vclusters:
            lines.append(f"  {vc}: {{ port: {self.ports[vc]}, primary: east }}")
        lines += [f"admin: {{ listen: 127.0.0.1:{self.admin_port} }}",
                  f"state: {self.state_path}", "workers: 2"]
        if chaos is not None:
            lines.append("chaos:")
            lines += [f"  - {_yaml_value(rule)}" for rule in chaos]
        text = "\n".join(lines) + "\n" + self.extra
        with open(self.config_path, "w") as f:
            f.write(text)
        return text

    def start(self):
        n = len([f for f in os.listdir(self.tmp_path) if f.startswith("kgate") and
                 f.endswith(".stderr")])
        self.stderr_path = os.path.join(self.tmp_path, f"kgate{n}.stderr")
        self.proc = Proc([self.kgate_bin, "serve", "-c", self.config_path], self.stderr_path,
                         stdout=None)
        for vc in self.vclusters:
            if not wait_port_open("127.0.0.1", self.ports[vc], 20, alive=self.proc.alive):
                rc = self.proc.terminate()
                pytest.fail(f"kgate did not open port {self.ports[vc]} (exit {rc}); stderr:\n"
                            + self.proc.stderr_text()[-4000:])
        if not wait_port_open("127.0.0.1", self.admin_port, 20, alive=self.proc.alive):
            rc = self.proc.terminate()
            pytest.fail(f"kgate's admin API did not open (exit {rc}); stderr:\n"
                        + self.proc.stderr_text()[-4000:])

    def stop(self):
        if not self.proc:
            return
        rc = self.proc.terminate()
        text = self.proc.stderr_text()
        self.proc = None
        print(f"---- kgate stderr (last 6000 chars), exit code {rc} ----\n{text[-6000:]}")
        assert rc == 0, f"kgate exited with {rc} after SIGTERM"

    def restart(self):
        self.stop()
        self.start()

    def sighup(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stderr_text(self):
        return self.proc.stderr_text() if self.proc else ""

    def alive(self):
        return self.proc is not None and self.proc.alive()

    # -- addresses

    @property
    def bootstrap(self):
        return self.vc_bootstrap(self.vclusters[0])

    @property
    def bootstrap_port(self):
        return self.ports[self.vclusters[0]]

    def vc_bootstrap(self, vc):
        return f"127.0.0.1:{self.ports[vc]}"

    def broker_port(self, node_id, vc=None):
        return self.ports[vc or self.vclusters[0]] + 1 + node_id

    # -- admin API

    def request(self, method, path, body=None):
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.admin + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
        return status, parsed

    def post(self, rule):
        return self.request("POST", "/v1/chaos/rules", rule)

    def add(self, rule):
        status, body = self.post(rule)
        if status != 201:
            raise AdminError(f"POST {rule} -> {status} {body}")
        assert isinstance(body, dict) and body.get("id"), body
        return body

    def remove(self, rule_id):
        status, body = self.request("DELETE", f"/v1/chaos/rules/{rule_id}")
        if status != 204:
            raise AdminError(f"DELETE {rule_id} -> {status} {body}")

    def rules(self):
        status, body = self.request("GET", "/v1/chaos/rules")
        if status != 200:
            raise AdminError(f"GET /v1/chaos/rules -> {status} {body}")
        return body["rules"]

    def rule(self, rule_id):
        """The rule as listed (with its matched/injected counters), or None once it is gone."""
        status, body = self.request("GET", f"/v1/chaos/rules/{rule_id}")
        if status == 404:
            return None
        if status != 200:
            raise AdminError(f"GET rule {rule_id} -> {status} {body}")
        return body

    def injected(self, rule_id):
        r = self.rule(rule_id)
        return r["injected"] if r else None

    def wait_rule_gone(self, rule_id, timeout=15):
        wait_for(lambda: self.rule(rule_id) is None, timeout, 0.1, f"rule {rule_id} to expire")
