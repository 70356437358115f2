"""ACL bindings at kgate (issue 8, item 5) through the real CLI and admin API of a running kgate:
`kgate acl add|list|rm` and /v1/acls, the config file's `acls:` list applied at start and by
`kgate reload`, bindings kept in the state store across a restart, every change audited with
the caller, `kgate check` naming a bad binding with its line. (Enforcement in the request path
is tested where it is wired.)"""

import json
import os

import kghelpers
from kghelpers import admin_http, kgate_ports, run, start_kgate, stop_kgate

TOKEN = "acl-test-token"

CONFIG_ACLS = [
    "acls:",
    "  - { principal: 'User:svc', permission: allow, resource_type: group, resource_name: g1,",
    "      operations: [Read, Describe] }",
]


class AclGate:
    """kgate in front of CLUSTER with `acls: enabled` on the virtual cluster "default", an admin
    token, and the top-level ACL_LINES; .restart(acl_lines) keeps the state store."""

    def __init__(self, cluster, work, acl_lines=CONFIG_ACLS):
        ports, self.admin_port = kgate_ports(["default"])
        self.base = ports["default"]
        self.work = str(work)
        self.cluster = cluster
        self.config_path = os.path.join(self.work, "kgate.yaml")
        self.state = os.path.join(self.work, "kgate-state.db")
        self.starts = 0
        self.proc = None
        self.start(acl_lines)

    def write_config(self, acl_lines):
        lines = ["listen: 127.0.0.1", "advertised_host: 127.0.0.1", "clusters:",
                 f'  east: {{ bootstrap: "{self.cluster.bootstrap}" }}', "vclusters:",
                 "  default:", f"    port: {self.base}", "    primary: east", "    acls: enabled",
                 f"admin: {{ listen: 127.0.0.1:{self.admin_port}, token: {TOKEN} }}",
                 f"state: {self.state}", *acl_lines]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, acl_lines):
        self.write_config(acl_lines)
        self.starts += 1
        stderr = os.path.join(self.work, f"kgate{self.starts}.stderr")
        self.proc = start_kgate(kghelpers.KGATE_BIN, self.config_path, stderr, [self.base])

    def stop(self):
        if self.proc:
            stop_kgate(self.proc)
            self.proc = None

    def restart(self, acl_lines):
        self.stop()
        self.start(acl_lines)

    def reload(self, check=True):
        cp = run([kghelpers.KGATE_BIN, "reload", "--admin", f"127.0.0.1:{self.admin_port}",
                  "--token", TOKEN], timeout=60, check=False)
        if check:
            assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
        return cp

    def cli(self, *args, check=True):
        cp = run([kghelpers.KGATE_BIN, "acl", *args, "--admin", f"127.0.0.1:{self.admin_port}",
                  "--token", TOKEN], timeout=60, check=False)
        if check:
            assert cp.returncode == 0, (args, cp.returncode, cp.stdout, cp.stderr)
        return cp

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout.decode())

    def admin(self, method, path, body=None, token=TOKEN):
        return admin_http(self.admin_port, method, path, body, token=token)

    def audit(self, type_):
        reply = self.admin("GET", "/v1/audit?limit=1000")
        assert reply.status == 200, reply
        entries = reply.json["entries"] if isinstance(reply.json, dict) else reply.json
        return [e for e in entries if e["type"] == type_]


def make(cluster, tmp_path, **kwargs):
    work = tmp_path / "kgate"
    work.mkdir(exist_ok=True)
    return AclGate(cluster, work, **kwargs)


def keys(bindings):
    return sorted((b["principal"], b["permission"], b["operation"], b["resource_type"],
                   b["resource_name"], b["pattern_type"], b["host"]) for b in bindings)


def test_cli_and_api_add_list_rm_audited(cluster, tmp_path):
    gate = make(cluster, tmp_path)
    try:
        # The config file's bindings are there from the start, marked as such.
        listed = gate.cli_json("list")
        assert keys(listed) == [("User:svc", "allow", "Describe", "group", "g1", "literal", "*"),
                                ("User:svc", "allow", "Read", "group", "g1", "literal", "*")]
        assert {b["source"] for b in listed} == {"config"}

        out = gate.cli("add", "--allow", "User:alice", "--operation", "Write,Describe",
                       "--topic", "orders", "--pattern", "prefixed").stdout.decode()
        assert "added 2 binding(s)" in out
        assert "allow User:alice Write on topic orders (prefixed) from *" in out
        # Adding it again changes nothing (and audits nothing).
        out = gate.cli("add", "--allow", "User:alice", "--operation", "WRITE", "--topic",
                       "orders", "--pattern", "PREFIXED").stdout.decode()
        assert "added 0 binding(s)" in out
        gate.cli("add", "--deny", "User:*", "--operation", "All", "--group", "*", "--host",
                 "10.1.2.3")
        gate.cli("add", "--allow", "User:svc", "--operation", "IdempotentWrite", "--cluster")
        gate.cli("add", "--allow", "User:svc", "--operation", "Write,Describe",
                 "--transactional-id", "tx-", "--pattern", "prefixed")

        alice = gate.cli_json("list", "--principal", "User:alice")
        assert keys(alice) == [
            ("User:alice", "allow", "Describe", "topic", "orders", "prefixed", "*"),
            ("User:alice", "allow", "Write", "topic", "orders", "prefixed", "*")]
        assert {b["source"] for b in alice} == {"api"}
        text = gate.cli("list", "--principal", "User:alice").stdout.decode()
        assert text.count("User:alice") == 2 and "[api]" in text
        # The API behind it, with filters.
        reply = gate.admin("GET", "/v1/acls?principal=User:alice")
        assert reply.status == 200 and keys(reply.json["acls"]) == keys(alice)
        reply = gate.admin("GET", "/v1/acls?resource_type=cluster")
        assert [b["resource_name"] for b in reply.json["acls"]] == ["kafka-cluster"]
        reply = gate.admin("GET", "/v1/acls?resource_type=group&permission=deny")
        assert keys(reply.json["acls"]) == [
            ("User:*", "deny", "All", "group", "*", "literal", "10.1.2.3")]
        assert gate.admin("GET", "/v1/acls", token=None).status == 401
        reply = gate.admin("POST", "/v1/acls", {"principal": "User:bob", "permission": "allow",
                                                "resource_type": "topic",
                                                "resource_name": "payments",
                                                "operation": "Read"})
        assert reply.status == 201 and reply.json["created"] == 1
        assert gate.admin("POST", "/v1/acls", {"principal": "User:bob", "permission": "allow",
                                               "resource_type": "group", "resource_name": "g",
                                               "operation": "Write"}).status == 400
        assert gate.admin("DELETE", "/v1/acls").status == 400
        reply = gate.admin("DELETE", "/v1/acls?principal=User:bob")
        assert reply.status == 200 and len(reply.json["removed"]) == 1
        assert gate.admin("DELETE", "/v1/acls?principal=User:bob").status == 404

        # rm: a named resource means a literal pattern unless told otherwise (kafka-acls).
        cp = gate.cli("rm", "--allow", "User:alice", "--operation", "Write", "--topic", "orders",
                      check=False)
        assert cp.returncode == 1 and b"no ACL binding matches" in cp.stderr
        out = gate.cli("rm", "--allow", "User:alice", "--operation", "Write", "--topic",
                       "orders", "--pattern", "prefixed").stdout.decode()
        assert "removed 1 binding(s)" in out
        assert keys(gate.cli_json("list", "--principal", "User:alice")) == [
            ("User:alice", "allow", "Describe", "topic", "orders", "prefixed", "*")]
        removed = gate.cli_json("rm", "--principal", "User:svc", "--transactional-id", "tx-",
                                "--pattern", "any")
        assert len(removed) == 2

        # Usage errors exit 2 and change nothing.
        for bad in (["add", "--operation", "Write", "--topic", "t"],
                    ["add", "--allow", "User:a", "--operation", "Fly", "--topic", "t"],
                    ["add", "--allow", "User:a", "--operation", "Read", "--topic", "t",
                     "--group", "g"],
                    ["rm"]):
            assert gate.cli(*bad, check=False).returncode == 2, bad

        # Every change audited, with the caller's identity.
        created, deleted = gate.audit("acl.create"), gate.audit("acl.delete")
        api_created = [e for e in created if e["details"]["source"] == "api"]
        assert len(api_created) == 2 + 1 + 1 + 2 + 1  # alice x2, deny, cluster, txn x2, bob
        assert all(e["details"]["actor"].startswith("token:") for e in api_created)
        assert len([e for e in created if e["details"]["actor"] == "config"]) == 2
        assert len(deleted) == 1 + 1 + 2
        assert {e["details"]["principal"] for e in deleted} == {"User:bob", "User:alice",
                                                                "User:svc"}
        verify = gate.admin("GET", "/v1/audit/verify")
        assert verify.status == 200 and verify.json["intact"] is True
    finally:
        gate.stop()


def test_bindings_survive_a_restart_and_config_bindings_follow_the_file(cluster, tmp_path):
    gate = make(cluster, tmp_path)
    try:
        gate.cli("add", "--allow", "User:alice", "--operation", "Read", "--topic", "orders")
        # The file now holds another binding: the old config ones go, the new one comes, the
        # API's stays.
        gate.restart(["acls:",
                      "  - principal: 'User:etl'",
                      "    permission: allow",
                      "    resource_type: topic",
                      "    resource_name: 'raw.'",
                      "    pattern_type: prefixed",
                      "    operation: Read"])
        listed = gate.cli_json("list")
        assert keys(listed) == [
            ("User:alice", "allow", "Read", "topic", "orders", "literal", "*"),
            ("User:etl", "allow", "Read", "topic", "raw.", "prefixed", "*")]
        by_principal = {b["principal"]: b["source"] for b in listed}
        assert by_principal == {"User:alice": "api", "User:etl": "config"}
        dropped = [e for e in gate.audit("acl.delete") if e["details"]["actor"] == "config"]
        assert {(e["details"]["principal"], e["details"]["operation"]) for e in dropped} == \
            {("User:svc", "Read"), ("User:svc", "Describe")}
        # No acls: list at all: the config's bindings go, the API's stay.
        gate.restart([])
        assert keys(gate.cli_json("list")) == [
            ("User:alice", "allow", "Read", "topic", "orders", "literal", "*")]
        # kgate reload (as SIGHUP) applies the file's list without a restart; a bad binding in
        # it is refused with its index and changes nothing.
        gate.write_config(["acls:", "  - { principal: 'User:late', permission: deny,",
                           "      resource_type: topic, resource_name: '*', operation: All }"])
        gate.reload()
        assert keys(gate.cli_json("list", "--principal", "User:late")) == [
            ("User:late", "deny", "All", "topic", "*", "literal", "*")]
        gate.write_config(["acls:", "  - { principal: 'User:late', permission: maybe,",
                           "      resource_type: topic, resource_name: '*', operation: All }"])
        cp = gate.reload(check=False)
        assert cp.returncode == 1 and b"acls[0]: permission" in cp.stderr, cp
        assert len(gate.cli_json("list", "--principal", "User:late")) == 1
    finally:
        gate.stop()


def test_kgate_check_names_a_bad_binding_and_serve_refuses_it(cluster, tmp_path):
    work = tmp_path / "check"
    work.mkdir()
    ports, admin_port = kgate_ports(["default"])
    config = work / "kgate.yaml"
    config.write_text("\n".join([
        "clusters:", f'  east: {{ bootstrap: "{cluster.bootstrap}" }}',
        "vclusters:", "  default:", f"    port: {ports['default']}", "    primary: east",
        "    acls: enabled",
        f"admin: {{ listen: 127.0.0.1:{admin_port} }}", f"state: {work / 'state.db'}",
        "acls:",
        "  - { principal: 'User:ok', permission: allow, resource_type: topic,",
        "      resource_name: t, operation: Read }",
        "  - { principal: alice, permission: allow, resource_type: topic, resource_name: t,",
        "      operation: Read }",
        "  - { principal: 'User:x', permission: allow, resource_type: group, resource_name: g,",
        "      operation: Write }"]) + "\n")
    cp = run([kghelpers.KGATE_BIN, "check", "-c", str(config)], timeout=30, check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1, err
    assert f"{config}:13: acls[1]: principal" in err
    assert f"{config}:15: acls[2]: operation: Write does not apply to a group" in err
    cp = run([kghelpers.KGATE_BIN, "serve", "-c", str(config)], timeout=30, check=False)
    assert cp.returncode != 0 and b"acls[1]" in cp.stderr
    config.write_text(config.read_text().replace("    acls: enabled\n", "    acls: on\n", 1))
    cp = run([kghelpers.KGATE_BIN, "check", "-c", str(config)], timeout=30, check=False)
    assert cp.returncode == 1 and b"must be enabled or disabled" in cp.stderr
