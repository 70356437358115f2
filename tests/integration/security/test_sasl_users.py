"""Users managed by kgate: `kgate users add|passwd|rm|list` (and the API under it) take effect
for the next connection without a restart, never show a secret, and every change is audited."""

import json

from secgate import connect, librdkafka_auth, librdkafka_sasl, scram_authenticate


def can_connect(gate, mechanism, user, password):
    return librdkafka_auth(gate.bootstrap, librdkafka_sasl(mechanism, user, password)) == []


def test_cli_add_passwd_rm_without_restart(make_gate, cluster, tmp_path):
    gate = make_gate({"east": cluster})
    assert not can_connect(gate, "SCRAM-SHA-512", "carol", "first-pw")
    pw_file = tmp_path / "carol.pw"
    pw_file.write_text("first-pw\n")
    out = gate.cli("add", "carol", "--mechanism", "SCRAM-SHA-512", "--password-file",
                   str(pw_file), "--json").stdout.decode()
    assert json.loads(out)["name"] == "carol" and "first-pw" not in out
    assert can_connect(gate, "SCRAM-SHA-512", "carol", "first-pw")
    assert can_connect(gate, "PLAIN", "carol", "first-pw")
    assert not can_connect(gate, "SCRAM-SHA-256", "carol", "first-pw")  # no such credential
    gate.cli("passwd", "carol", "--mechanism", "SCRAM-SHA-512", "--password-stdin",
             input="second-pw\n")
    assert not can_connect(gate, "SCRAM-SHA-512", "carol", "first-pw")
    assert can_connect(gate, "SCRAM-SHA-512", "carol", "second-pw")
    # A session authenticated before the removal keeps its connection (as in Kafka);
    # new connections are refused at once.
    with connect(gate.bootstrap) as s:
        assert scram_authenticate(s, "SCRAM-SHA-512", "carol", "second-pw")[0] == 0
        gate.cli("rm", "carol")
        assert not can_connect(gate, "SCRAM-SHA-512", "carol", "second-pw")
    listed = gate.cli("list", "--json").stdout.decode()
    assert json.loads(listed) == []
    # every change audited, no secret in the audit
    entries = gate.audit("user.create") + gate.audit("user.password") + gate.audit("user.delete")
    assert [e["type"] for e in entries] == ["user.create", "user.password", "user.delete"]
    dump = json.dumps(entries) + gate.log()
    assert "first-pw" not in dump and "second-pw" not in dump


def test_cli_and_api_errors_and_no_secrets(gate, tmp_path):
    cp = gate.cli("add", "dave", "--mechanism", "SCRAM-SHA-1", "--password-stdin", input="x\n",
                  check=False)
    assert cp.returncode == 1 and b"mechanism" in cp.stderr
    cp = gate.cli("add", "dave", "--mechanism", "SCRAM-SHA-256", check=False)
    assert cp.returncode == 2 and b"--password" in cp.stderr
    cp = gate.cli("add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin",
                  input="x\n", check=False)
    assert cp.returncode == 1 and b"already" in cp.stderr
    cp = gate.cli("passwd", "nobody", "--mechanism", "SCRAM-SHA-256", "--password-stdin",
                  input="x\n", check=False)
    assert cp.returncode == 1
    cp = gate.cli("rm", "nobody", check=False)
    assert cp.returncode == 1
    assert gate.admin("POST", "/v1/users", {"name": "eve", "mechanism": "SCRAM-SHA-256"}).status \
        == 400
    assert gate.admin("POST", "/v1/users", {"name": "eve", "mechanism": "SCRAM-SHA-256",
                                            "password": "p", "iterations": 100}).status == 400
    one = gate.admin("GET", "/v1/users/alice")
    assert one.status == 200 and [m["mechanism"] for m in one.json["mechanisms"]] == \
        ["SCRAM-SHA-256", "SCRAM-SHA-512"]
    everything = gate.admin("GET", "/v1/users").text
    for secret in ("salt", "stored_key", "server_key", "alice-secret"):
        assert secret not in everything
    text = gate.cli("list").stdout.decode()
    assert "alice" in text and "bob" in text
