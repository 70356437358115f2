"""kgate with chaos for the tests: ChaosGate (kgate in front of a DevCluster, with any number of
virtual clusters, an optional `chaos:` list in its file, and the admin API at hand), and the
gate_factory / gate fixtures the chaos and experiment suites share.

A plain module (not conftest.py) so that test modules can import it by a unique name.

kgate runs from the session's private copy of the binary under test (kghelpers.KGATE_BIN once
the private_kgate fixture made it): other work rebuilding build/kgate mid-run must not make
tests fail."""

import json
import os
import signal

import pytest

import kghelpers
from kghelpers import (DevCluster, admin_http, factory_in_subdirs, kgate_config_yaml,  # noqa: F401
                       kgate_ports, start_kgate, stop_kgate, wait_for)
# DevCluster is imported from here by the chaos tests that start their own clusters.

CLUSTER_VERSIONS = [v.strip() for v in os.environ.get("KGATE_CHAOS_CLUSTERS", "2.0.2").split(",")
                    if v.strip()]
# Each test has its own dev cluster, so tests only need distinct topics inside one test.
CHAOS_TOPICS = ["a6:6", "b6:6", "a3:3", "b3:3", "a1:1", "b1:1", "c1:1",
                "orders.eu:3", "orders.us:3", "xorders:3"]


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
        self.kgate_bin = kghelpers.KGATE_BIN
        self.cluster = cluster
        self.tmp_path = str(tmp_path)
        self.vclusters = list(vclusters)
        self.extra = extra
        self.ports, self.admin_port = kgate_ports(self.vclusters)
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.config_path = os.path.join(self.tmp_path, "kgate.yaml")
        self.state_path = os.path.join(self.tmp_path, "kgate-state.db")
        self.write_config(chaos)
        self.proc = None
        self.start()

    # -- process

    def write_config(self, chaos=None):
        lines = ["workers: 2"]
        if chaos is not None:
            lines.append("chaos:")
            lines += [f"  - {_yaml_value(rule)}" for rule in chaos]
        text = kgate_config_yaml({"east": self.cluster.bootstrap},
                                 [(vc, self.ports[vc], "east", None) for vc in self.vclusters],
                                 self.admin_port, self.state_path, extra_lines=lines) + self.extra
        with open(self.config_path, "w") as f:
            f.write(text)
        return text

    def start(self):
        n = len([f for f in os.listdir(self.tmp_path) if f.startswith("kgate") and
                 f.endswith(".stderr")])
        self.stderr_path = os.path.join(self.tmp_path, f"kgate{n}.stderr")
        self.proc = start_kgate(self.kgate_bin, self.config_path, self.stderr_path,
                                [self.ports[vc] for vc in self.vclusters] + [self.admin_port])

    def stop(self):
        if not self.proc:
            return
        proc, self.proc = self.proc, None
        stop_kgate(proc)

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
        """(status, body as JSON, or as text when it is not JSON, None when empty); BODY is
        sent as JSON unless it is bytes."""
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        reply = admin_http(self.admin_port, method, path, data,
                           headers={"Content-Type": "application/json"}, timeout=10)
        if reply.json is not None:
            return reply.status, reply.json
        return reply.status, reply.text or None

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

    def wait_rule_gone(self, rule_id, timeout=60):
        """Bounded wait for kgate to drop the rule (expiry is swept once a second); the bound
        only guards against a hang."""
        wait_for(lambda: self.rule(rule_id) is None, timeout, 0.1, f"rule {rule_id} to expire")


# ---------------------------------------------------------------------------------------------
# Fixtures (imported by chaos/conftest.py and experiments/conftest.py, each with its own `cluster`)


@pytest.fixture
def gate_factory(cluster, tmp_path):
    """gate_factory(vclusters=("default",), chaos=None, extra="") -> a ChaosGate for `cluster`;
    stopped at teardown, exit code 0 asserted."""
    yield from factory_in_subdirs(tmp_path, "gate",
                                  lambda sub, **kwargs: ChaosGate(cluster, sub, **kwargs))


@pytest.fixture
def gate(gate_factory):
    return gate_factory()
