"""Every command of docs/runbook.md, run the way the on-call engineer would, during a simulated
region outage: east hangs (SIGSTOP), the runbook detects it, decides, switches Wave 1 then
Wave 2 to west, validates both sides, stabilizes, and fails back once east answers again; then
a second outage (west this time) exercises the refused and the forced switch.

The runbook's ```sh blocks each start with a "# <step>" comment naming them. Its setup block
holds the only site-specific values (the placeholders below), which this test replaces with its
own config, token file, admin URL and cluster addresses. Virtual cluster, cluster and topic names
are used as written: this test's kgate has exactly those. Every block must be run and checked
here: a new block without a step in this test fails test_every_runbook_block_is_tested."""

import os
import re
import subprocess

import pytest

import kghelpers
from fohelpers import DevCluster, tail
from kghelpers import ROOT

RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")
# Documented placeholder -> what this test puts there (filled in by the test).
PLACEHOLDERS = ["/etc/kgate/kgate.yaml", "/etc/kgate/admin.token", "http://127.0.0.1:19644",
                "east-kafka-1:9092", "west-kafka-1:9092", "kgate.internal:19092"]
STEPS = ["setup", "detect: status", "detect: down clusters", "detect: metrics",
         "decide: replication lag", "switch: wave 1", "switch: wave 2",
         "switch: force (only after checking west yourself)", "validate: kgate",
         "validate: through kgate", "validate: new side directly", "stabilize: audit",
         "stabilize: old side quiet", "failback: check", "failback: wave 2", "failback: wave 1"]
VCLUSTERS = [("payments", "east", "west"), ("checkout", "east", "west"),
             ("analytics", "east", "west")]
TOPICS = {"payments.events": 3, "kgate-canary": 1}
TOKEN = "runbook-token-3am"


def runbook_blocks():
    """[(step, commands)] of the ```sh blocks of the runbook, in order."""
    with open(RUNBOOK) as f:
        text = f.read()
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        first, _, rest = body.partition("\n")
        m = re.fullmatch(r"# (.+)", first.strip())
        assert m, f"runbook block without a '# step' first line:\n{body}"
        blocks.append((m.group(1), rest))
    return blocks


def test_every_runbook_block_is_tested():
    steps = [s for s, _ in runbook_blocks()]
    assert steps == STEPS, ("docs/runbook.md's blocks and this test's steps differ; update "
                            f"test_runbook.py:\n runbook: {steps}\n test:    {STEPS}")
    setup = dict(runbook_blocks())["setup"]
    for placeholder in PLACEHOLDERS:
        assert placeholder in setup, f"placeholder {placeholder} not in the runbook's setup"


class Runbook:
    """Runs runbook blocks in bash (set -eo pipefail), after the setup block, with the
    placeholders replaced and this test's kgate binary first on PATH."""

    def __init__(self, substitutions, work_dir):
        self.blocks = dict(runbook_blocks())
        self.subs = substitutions
        self.work_dir = str(work_dir)
        self.ran = set()
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.dirname(kghelpers.KGATE_BIN) + os.pathsep + self.env["PATH"]
        for name in ("KGATE_ADMIN_URL", "KGATE_ADMIN_TOKEN"):
            self.env.pop(name, None)

    def script(self, step, extra=""):
        text = "\n".join(["set -eo pipefail", self.blocks["setup"], extra,
                          self.blocks[step] if step != "setup" else ""])
        for placeholder, value in self.subs.items():
            text = text.replace(placeholder, value)
        for placeholder in PLACEHOLDERS:
            assert placeholder not in text, f"{placeholder} left in:\n{text}"
        return text

    def run(self, step, expect_rc=0, extra=""):
        """Runs the block; returns stdout+stderr. expect_rc: an int, or "nonzero"."""
        self.ran.add(step)
        cp = subprocess.run(["bash", "-c", self.script(step, extra)], cwd=self.work_dir,
                            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=90)
        out = cp.stdout
        print(f"---- runbook step '{step}' (exit {cp.returncode}) ----\n{out}")
        if expect_rc == "nonzero":
            assert cp.returncode != 0, f"step '{step}' should fail:\n{out}"
        else:
            assert cp.returncode == expect_rc, f"step '{step}' exited {cp.returncode}:\n{out}"
        return out


def table_rows(output, first_column):
    """Rows of a `kgate status` table whose first column is first_column, split on blanks."""
    return [line.split() for line in output.splitlines()
            if line.split() and line.split()[0] == first_column]


def assert_active(output, vcluster, side):
    rows = table_rows(output, vcluster)
    assert rows and rows[0][1] == side, f"{vcluster} should be active on {side}:\n{output}"


def assert_cluster_state(output, cluster, state):
    rows = [r for r in table_rows(output, cluster) if len(r) > 1 and r[1] in ("up", "down")]
    assert rows and rows[0][1] == state, f"{cluster} should be {state}:\n{output}"


def newest_canary(cluster):
    records = sorted(cluster.read_all("kgate-canary"), key=lambda r: r[1])
    assert records, f"no canary on {cluster.name}"
    assert records[-1][2].startswith("canary "), records[-1]
    return records[-1][2]


def produce_direct(cluster, topic, count):
    """Writes straight to a cluster (what replication does)."""
    cp = subprocess.run(["kcat", "-P", "-b", cluster.bootstrap, "-t", topic, "-K", "|"],
                        input="".join(f"k{i}|replicated-{i}\n" for i in range(count)).encode(),
                        stderr=subprocess.PIPE, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode()


@pytest.fixture
def incident(tmp_path, make_kgate):
    clusters = {n: DevCluster(n, "2.12", TOPICS, tmp_path) for n in ("east", "west")}
    try:
        for c in clusters.values():
            produce_direct(c, "payments.events", 30)
        kg = make_kgate(clusters, VCLUSTERS, token=TOKEN)
        token_file = os.path.join(str(tmp_path), "admin.token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        subs = {"/etc/kgate/kgate.yaml": kg.config_path, "/etc/kgate/admin.token": token_file,
                "http://127.0.0.1:19644": kg.admin_url,
                "east-kafka-1:9092": clusters["east"].bootstrap,
                "west-kafka-1:9092": clusters["west"].bootstrap,
                "kgate.internal:19092": kg.bootstrap("payments")}
        yield kg, clusters, Runbook(subs, tmp_path)
    finally:
        for c in clusters.values():
            c.stop()


def vc_active(kg, name):
    return kg.vcluster_status(name)["active"]


@pytest.mark.guard(240)
def test_runbook_region_outage_and_failback(incident):
    kg, clusters, rb = incident
    east, west = clusters["east"], clusters["west"]

    out = rb.run("setup", extra='echo "$KGATE_CONFIG|$KGATE_ADMIN_URL|$KGATE_ADMIN_TOKEN|'
                                '$EAST|$WEST|$GATEWAY"')
    assert out.strip().splitlines()[-1] == "|".join(
        [kg.config_path, kg.admin_url, TOKEN, east.bootstrap, west.bootstrap,
         kg.bootstrap("payments")]), out

    # Before the incident: one canary through kgate lands on east.
    rb.run("validate: through kgate")
    east_canary_end = east.end_offsets("kgate-canary")[0]
    assert east_canary_end == 1

    # ---- the outage: east hangs ----
    east.freeze()
    kg.wait_cluster_up("east", False)

    out = rb.run("detect: status")
    assert_cluster_state(out, "east", "down")
    assert_cluster_state(out, "west", "up")
    for name, _, _ in VCLUSTERS:
        assert_active(out, name, "east")
    out = rb.run("detect: down clusters")
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("east: ") and len(lines[0]) > 6, out
    out = rb.run("detect: metrics")
    assert 'kgate_cluster_up{cluster="east"} 0' in out, out
    assert 'kgate_cluster_up{cluster="west"} 1' in out, out
    assert re.search(r'kgate_vcluster_active\{vcluster="payments",cluster="east"[^}]*\} 1', out)
    assert "readyz 503" in out, out

    out = rb.run("decide: replication lag")
    lines = out.strip().splitlines()
    now_ms = int(lines[-1])
    parts = [tuple(int(x) for x in l.split()) for l in lines[:-1]]
    assert {p for p, _, _ in parts} == {0, 1, 2}, out
    assert all(0 < ts <= now_ms for _, _, ts in parts), out

    out = rb.run("switch: wave 1")
    assert re.search(r"^payments: east -> west \(epoch 1\), \d+ connections closed", out, re.M)
    assert re.search(r"^checkout: east -> west \(epoch 1\)", out, re.M), out
    assert (vc_active(kg, "payments"), vc_active(kg, "checkout"),
            vc_active(kg, "analytics")) == ("west", "west", "east")
    out = rb.run("switch: wave 2")
    assert re.search(r"^analytics: east -> west \(epoch 1\)", out, re.M), out

    out = rb.run("validate: kgate")
    for name, _, _ in VCLUSTERS:
        assert_active(out, name, "west")
    assert "payments: east -> west (epoch 1)" in out, out
    assert "INC-1234 east region outage" in out, out
    assert 'kgate_client_connections{vcluster="payments"}' in out, out
    west_canary_end = west.end_offsets("kgate-canary")[0]
    out = rb.run("validate: through kgate")
    base = kg.ports["payments"]
    brokers = re.findall(r"broker (\d+) at (\S+)", out)
    assert len(brokers) == 3 and all(a == f"127.0.0.1:{base + 1 + int(n)}" for n, a in brokers), out
    assert west.end_offsets("kgate-canary")[0] == west_canary_end + 1
    canary = newest_canary(west)
    out = rb.run("validate: new side directly")
    assert canary in out, out

    out = rb.run("stabilize: audit")
    assert "intact" in out, out

    # ---- east comes back ----
    east.thaw()
    kg.wait_cluster_up("east", True)
    quiet = f"kgate-canary [0] offset {east_canary_end}"
    assert quiet in rb.run("stabilize: old side quiet")
    rb.run("validate: through kgate")  # more writes by clients through kgate ...
    assert quiet in rb.run("stabilize: old side quiet")  # ... and none reach east
    assert east.end_offsets("kgate-canary")[0] == east_canary_end

    out = rb.run("failback: check")
    assert "east up=true" in out and "west up=true" in out, out
    out = rb.run("failback: wave 2")
    assert re.search(r"^analytics: west -> east \(epoch 2\)", out, re.M), out
    assert vc_active(kg, "payments") == "west"
    out = rb.run("failback: wave 1")
    assert re.search(r"^payments: west -> east \(epoch 2\)", out, re.M), out
    assert re.search(r"^checkout: west -> east \(epoch 2\)", out, re.M), out

    # Step 4 again with the sides swapped.
    swapped = f'export EAST="{west.bootstrap}" WEST="{east.bootstrap}"'
    west_quiet = f"kgate-canary [0] offset {west.end_offsets('kgate-canary')[0]}"
    rb.run("validate: through kgate", extra=swapped)
    assert east.end_offsets("kgate-canary")[0] == east_canary_end + 1
    assert newest_canary(east) in rb.run("validate: new side directly", extra=swapped)
    assert west_quiet in rb.run("stabilize: old side quiet", extra=swapped)
    out = rb.run("validate: kgate", extra=swapped)
    for name, _, _ in VCLUSTERS:
        assert_active(out, name, "east")
    assert "intact" in rb.run("stabilize: audit")

    # ---- a second outage, of west: the switch is refused, forcing it works ----
    west.freeze()
    kg.wait_cluster_up("west", False)
    out = rb.run("switch: wave 1", expect_rc="nonzero")
    assert "west" in out and "down" in out, out
    assert vc_active(kg, "payments") == "east"
    out = rb.run("switch: force (only after checking west yourself)")
    assert re.search(r"^payments: east -> west \(epoch 3\)", out, re.M), out
    forced = [e for e in kg.audit_entries() if e["type"] == "switch"][-1]["details"]
    assert forced["forced"] is True and forced["vcluster"] == "payments", forced
    west.thaw()

    assert rb.ran == set(STEPS), f"steps never run: {set(STEPS) - rb.ran}"
    assert kg.alive(), tail(kg.log())
