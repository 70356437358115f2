"""Admin API tokens with roles and HTTPS (issue 8, item 6) against a running kgate:

- `kgate token add NAME --role ROLE` prints a token once; `token list` shows names and roles,
  never a secret; `token rm` makes it unknown (401);
- viewer reads (GET /v1/status) but gets 403 naming the operator role on a failover; operator
  fails over and reloads, but gets 403 on users and ACLs; admin does all of it;
- the audit names the token (token:NAME) of every change and every refusal;
- admin.tls: the CLI talks HTTPS with --cacert or the config's admin.tls.ca_file and refuses a
  server its CA did not sign; certificates are made at test time with the openssl CLI.
"""

import json
import os
import re
import ssl
import http.client
import subprocess

import pytest

import kghelpers
from kghelpers import DevCluster, admin_http, kgate_ports, run, start_kgate, stop_kgate, stop_all

pytestmark = pytest.mark.kgate_only

BOOT = "bootstrap-secret-for-tests"
TOKEN_RE = re.compile(r"^(kgt_[A-Za-z0-9_-]{43})$", re.M)


@pytest.fixture(autouse=True)
def _private(private_kgate):
    return private_kgate


@pytest.fixture
def clusters(tmp_path):
    started = []
    try:
        for name in ("east", "west"):
            started.append(DevCluster("2.0.2", tmp_path, ["t1:1"], brokers=1, name=name))
        yield {c.name: c for c in started}
    finally:
        stop_all(started)


class Gate:
    """kgate with vcluster "default" (east primary, west secondary), the bootstrap token BOOT and
    optionally admin.tls."""

    def __init__(self, clusters, work, tls=None):
        ports, self.admin_port = kgate_ports(["default"])
        self.port = ports["default"]
        self.work = str(work)
        self.tls = tls
        self.config = os.path.join(self.work, "kgate.yaml")
        admin = [f"admin:", f"  listen: 127.0.0.1:{self.admin_port}", f"  token: {BOOT}"]
        if tls:
            admin.append(f"  tls: {{ cert_file: {tls['cert']}, key_file: {tls['key']},"
                         f" ca_file: {tls['ca']} }}")
        lines = ["listen: 127.0.0.1", "advertised_host: 127.0.0.1", "clusters:",
                 f'  east: {{ bootstrap: "{clusters["east"].bootstrap}" }}',
                 f'  west: {{ bootstrap: "{clusters["west"].bootstrap}" }}', "vclusters:",
                 f"  default: {{ port: {self.port}, primary: east, secondary: west }}",
                 *admin, f"state: {os.path.join(self.work, 'state.db')}"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = start_kgate(kghelpers.KGATE_BIN, self.config,
                                os.path.join(self.work, "kgate.stderr"),
                                [self.port, self.admin_port])

    def stop(self):
        if self.proc:
            stop_kgate(self.proc)
            self.proc = None

    def kgate(self, *args, check=True, config=True):
        """The CLI; with CONFIG, -c kgate.yaml gives it the address, token and CA."""
        argv = [kghelpers.KGATE_BIN, *args] + (["-c", self.config] if config else [])
        cp = run(argv, timeout=60, check=False)
        if check:
            assert cp.returncode == 0, (args, cp.returncode, cp.stdout, cp.stderr)
        return cp

    def add_token(self, name, role):
        out = self.kgate("token", "add", name, "--role", role).stdout.decode()
        assert f"added token {name} (role {role})" in out, out
        found = TOKEN_RE.search(out)
        assert found, out
        return found.group(1)

    def http(self, method, path, body=None, token=None):
        return admin_http(self.admin_port, method, path, body, token=token)

    def audit(self):
        reply = self.http("GET", "/v1/audit?limit=1000", token=BOOT)
        assert reply.status == 200, reply
        return reply.json["entries"]


@pytest.fixture
def make_gate(tmp_path):
    started = []

    def make(clusters, **kwargs):
        work = tmp_path / f"kgate{len(started)}"
        work.mkdir()
        g = Gate(clusters, work, **kwargs)
        started.append(g)
        return g

    yield make
    stop_all(started)


USER = {"name": "alice", "mechanism": "SCRAM-SHA-256", "password": "alice-secret"}
ACL = {"principal": "User:alice", "permission": "allow", "resource_type": "topic",
       "resource_name": "orders", "operation": "Read"}


def assert_forbidden(reply, needed, has):
    assert reply.status == 403, reply
    assert reply.json["required_role"] == needed, reply
    assert reply.json["role"] == has, reply
    assert f"needs the {needed} role" in reply.json["error"], reply


def test_roles_tokens_and_audit(clusters, make_gate):
    gate = make_gate(clusters)
    viewer = gate.add_token("dash", "viewer")
    oper = gate.add_token("oncall", "operator")
    admin = gate.add_token("secteam", "admin")
    assert len({viewer, oper, admin, BOOT}) == 4

    # Viewer: reads only.
    r = gate.http("GET", "/v1/status", token=viewer)
    assert r.status == 200 and r.json["vclusters"][0]["active"] == "east", r
    assert gate.http("GET", "/metrics", token=viewer).status == 200
    assert gate.http("GET", "/v1/audit", token=viewer).status == 200
    assert_forbidden(gate.http("POST", "/v1/vclusters/default/failover", {"to": "west"},
                               token=viewer), "operator", "viewer")
    assert_forbidden(gate.http("POST", "/v1/reload", token=viewer), "operator", "viewer")
    assert_forbidden(gate.http("GET", "/v1/tokens", token=viewer), "admin", "viewer")
    # The CLI shows the same refusal and exits 1.
    cp = gate.kgate("failover", "default", "--to", "west", "--token", viewer, check=False)
    assert cp.returncode == 1 and b"needs the operator role" in cp.stderr, cp
    assert gate.http("GET", "/v1/status", token=viewer).json["vclusters"][0]["active"] == "east"

    # Operator: fails over (and back), reloads; no users, ACLs or tokens.
    r = gate.http("POST", "/v1/vclusters/default/failover",
                  {"to": "west", "reason": "drill"}, token=oper)
    assert r.status == 200 and r.json["changed"] is True, r
    cp = gate.kgate("failback", "default", "--token", oper)
    assert gate.http("POST", "/v1/reload", token=oper).status == 200
    assert_forbidden(gate.http("POST", "/v1/users", USER, token=oper), "admin", "operator")
    assert_forbidden(gate.http("POST", "/v1/acls", ACL, token=oper), "admin", "operator")
    assert_forbidden(gate.http("DELETE", "/v1/acls?principal=User:alice", token=oper), "admin",
                     "operator")
    assert_forbidden(gate.http("POST", "/v1/tokens", {"name": "x", "role": "admin"}, token=oper),
                     "admin", "operator")
    assert gate.http("GET", "/v1/users", token=oper).status == 200

    # Admin: users, ACLs, tokens.
    r = gate.http("POST", "/v1/users", USER, token=admin)
    assert r.status == 201, r
    r = gate.http("POST", "/v1/acls", ACL, token=admin)
    assert r.status == 201, r
    assert gate.http("POST", "/v1/vclusters/default/failover", {"to": "west"},
                     token=admin).status == 200

    # Listed without secrets, by the CLI and the API.
    listed = json.loads(gate.kgate("token", "list", "--json").stdout.decode())
    assert [(t["name"], t["role"], t["source"]) for t in listed] == [
        ("bootstrap", "admin", "config"), ("dash", "viewer", "store"),
        ("oncall", "operator", "store"), ("secteam", "admin", "store")]
    for t in listed:
        assert set(t) <= {"name", "role", "source", "created_ts", "created_by"}, t
    text = gate.kgate("token", "list").stdout.decode() + gate.http(
        "GET", "/v1/tokens", token=admin).text
    for secret in (viewer, oper, admin, BOOT):
        assert secret not in text
    assert "oncall" in text and "operator" in text

    # Removed: unknown from then on (401), and no longer listed.
    assert "removed token dash" in gate.kgate("token", "rm", "dash").stdout.decode()
    r = gate.http("GET", "/v1/status", token=viewer)
    assert r.status == 401 and r.json["error"] == "invalid bearer token", r
    assert gate.http("GET", "/v1/status", token="kgt_" + "x" * 43).status == 401
    assert gate.http("GET", "/v1/status").status == 401
    assert "dash" not in gate.kgate("token", "list").stdout.decode()
    cp = gate.kgate("token", "rm", "bootstrap", check=False)
    assert cp.returncode == 1 and b"config file" in cp.stderr, cp

    # The audit names the token of every change and refusal, never a secret.
    entries = gate.audit()
    by_type = {}
    for e in entries:
        by_type.setdefault(e["type"], []).append(e["details"])
    assert [d["name"] for d in by_type["token.add"]] == ["dash", "oncall", "secteam"]
    assert all(d["actor"].startswith("token:bootstrap ") for d in by_type["token.add"])
    assert by_type["token.remove"][0]["actor"].startswith("token:bootstrap ")
    switches = [d["actor"] for d in by_type["switch"]]
    assert switches[0].startswith("token:oncall ") and switches[1].startswith("token:oncall ")
    assert switches[2].startswith("token:secteam ")
    assert any(d["actor"].startswith("token:oncall ") for d in by_type["config.reload"])
    assert by_type["user.create"][0]["actor"].startswith("token:secteam ")
    assert by_type["acl.create"][0]["actor"].startswith("token:secteam ")
    forbidden = by_type["admin.forbidden"]
    assert {(d["actor"].split(" ")[0], d["required_role"]) for d in forbidden} >= {
        ("token:dash", "operator"), ("token:dash", "admin"), ("token:oncall", "admin")}
    blob = json.dumps(entries)
    for secret in (viewer, oper, admin, BOOT):
        assert secret not in blob


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_pki(directory):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it; another CA."""
    d = str(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=kgate-test-{ca}", cwd=d)
    openssl("req", *ec, "-keyout", "admin.key", "-out", "admin.csr", "-subj", "/CN=kgate-admin",
            cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "admin.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return {k: os.path.join(d, v) for k, v in
            {"cert": "admin.pem", "key": "admin.key", "ca": "ca.pem",
             "other_ca": "other-ca.pem"}.items()}


def https(port, method, path, ca, body=None, token=None):
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        return resp.status, (json.loads(text) if text else None), resp.version
    finally:
        conn.close()


def test_admin_over_tls_with_the_cli_and_cacert(clusters, make_gate, tmp_path):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    gate = make_gate(clusters, tls=pki)
    url = f"https://127.0.0.1:{gate.admin_port}"

    # -c: https and the CA come from the config (admin.tls.ca_file).
    out = gate.kgate("status").stdout.decode()
    assert "default" in out and "east" in out, out
    oper = gate.add_token("oncall", "operator")
    viewer = gate.add_token("dash", "viewer")
    assert "oncall" in gate.kgate("token", "list").stdout.decode()

    # --admin https://... with --cacert; a CA that did not sign it, or none, is refused.
    cp = gate.kgate("status", "--admin", url, "--token", viewer, "--cacert", pki["ca"],
                    config=False)
    assert b"default" in cp.stdout
    cp = gate.kgate("status", "--admin", url, "--token", viewer, "--cacert", pki["other_ca"],
                    check=False, config=False)
    assert cp.returncode == 1 and b"cannot reach the admin API" in cp.stderr, cp
    cp = gate.kgate("status", "--admin", url, "--token", viewer, check=False, config=False)
    assert cp.returncode == 1 and b"certificate" in cp.stderr, cp
    # $KGATE_ADMIN_CACERT works too.
    env = dict(os.environ, KGATE_ADMIN_CACERT=pki["ca"])
    cp = run([kghelpers.KGATE_BIN, "status", "--admin", url, "--token", viewer], timeout=60,
             check=False, env=env)
    assert cp.returncode == 0, cp

    # Roles hold over TLS: the operator fails over through the CLI, the viewer may not.
    cp = gate.kgate("failover", "default", "--to", "west", "--admin", url, "--token", viewer,
                    "--cacert", pki["ca"], check=False, config=False)
    assert cp.returncode == 1 and b"needs the operator role" in cp.stderr, cp
    out = gate.kgate("failover", "default", "--to", "west", "--admin", url, "--token", oper,
                     "--cacert", pki["ca"], config=False).stdout.decode()
    assert "west" in out, out
    status, body, _ = https(gate.admin_port, "GET", "/v1/status", pki["ca"], token=viewer)
    assert status == 200 and body["vclusters"][0]["active"] == "west", body
    status, body, _ = https(gate.admin_port, "POST", "/v1/vclusters/default/failback",
                            pki["ca"], body={}, token=viewer)
    assert status == 403 and body["required_role"] == "operator", body

    # Plain HTTP to the TLS port gets no answer; the health probe needs TLS too.
    with pytest.raises(Exception):
        r = admin_http(gate.admin_port, "GET", "/healthz", timeout=5)
        assert r.status != 200
    status, body, _ = https(gate.admin_port, "GET", "/healthz", pki["ca"])
    assert status == 200, body
    switches = [e["details"]["actor"] for e in https(
        gate.admin_port, "GET", "/v1/audit?limit=100", pki["ca"], token=BOOT)[1]["entries"]
        if e["type"] == "switch"]
    assert switches and switches[0].startswith("token:oncall "), switches
