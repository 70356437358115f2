"""`kgate reload` (POST /v1/reload, SIGHUP) with a cluster's new bootstrap list (issue 9, item 4
second half; docs/config.md, "What reload applies"): new connections use the new addresses at
once, the connections already open stay where they are and a producer on them sees no error;
what reload cannot apply is named in the reply; a bad file changes nothing.

east is first reached at one dev cluster (east-a), then, after the reload, at another (east-b)
that has a topic east-a lacks: which of the two answers a fresh client's Metadata tells where
new connections go."""

import os
import signal
import socket
import time

import pytest
from confluent_kafka.admin import AdminClient

from fohelpers import ClientRun, DevCluster
from kghelpers import api_versions_v0, round_trip, wait_closed_by_peer, wait_for

TOPICS = {"rl": 3}


def topics_of(bootstrap):
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).topics)


@pytest.fixture
def sides(tmp_path):
    made = {"east-a": DevCluster("east-a", "2.12", TOPICS, tmp_path),
            "east-b": DevCluster("east-b", "2.12", {**TOPICS, "only-b": 1}, tmp_path),
            "west": DevCluster("west", "2.12", TOPICS, tmp_path)}
    yield made
    for c in made.values():
        c.stop()


@pytest.mark.guard(240)
def test_new_bootstrap_moves_new_connections_only(sides, make_kgate, tmp_path):
    kg = make_kgate({"east": sides["east-a"], "west": sides["west"]})
    assert "only-b" not in topics_of(kg.bootstrap("default"))
    run = ClientRun("confluent", kg.bootstrap("default"), "rl", tmp_path, consume=False).start()
    try:
        wait_for(lambda: (run.check_healthy() or True) and len(run.ack_times()) >= 20, 60,
                 what="the producer producing through kgate")
        with open(kg.config_path) as f:
            text = f.read()
        assert sides["east-a"].bootstrap in text
        with open(kg.config_path, "w") as f:
            f.write(text.replace(sides["east-a"].bootstrap, sides["east-b"].bootstrap))
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        assert reply.json["applied"] == [
            f"cluster east: bootstrap {sides['east-b'].bootstrap} (new connections; open ones "
            "keep theirs)"], reply.json
        assert "needs_restart" not in reply.json, reply.json
        t_reload = time.time()
        # A new client lands on east-b.
        wait_for(lambda: "only-b" in topics_of(kg.bootstrap("default")), 60, interval=0.5,
                 what="a new connection's Metadata to come from east-b")
        # The producer that was there before goes on, without a single error.
        wait_for(lambda: len(run.acked_sent_after(t_reload)) >= 50, 60,
                 what="acks after the reload")
        run.check_healthy()
        assert run.error_count() == 0 and run.nacked == [], run.diagnostics()
        assert kg.vcluster_status()["epoch"] == 0  # no switch happened

        # What reload does not apply is named; a file that does not load changes nothing.
        with open(kg.config_path) as f:
            text = f.read()
        with open(kg.config_path, "w") as f:
            f.write(text.replace("secondary: west", "secondary: east"))
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 400 and "not reloaded" in reply.json["error"], reply
        assert "secondary must be a different cluster" in reply.json["error"], reply
        # A cluster added: probed from now on (nothing routes to it yet).
        lines = text.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith("  west:"))
        lines.insert(at + 1, f'  extra: {{ bootstrap: "{sides["west"].bootstrap}" }}\n')
        with open(kg.config_path, "w") as f:
            f.write("".join(lines))
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        assert reply.json["applied"] == ["cluster extra added"], reply.json
        assert "needs_restart" not in reply.json, reply.json
        kg.wait_cluster_up("extra", True)
        # The good file again, by SIGHUP: nothing left to change, nothing moves.
        with open(kg.config_path, "w") as f:
            f.write(text)
        reloads = kg.log().count("reloaded ")
        os.kill(kg.proc.pid, signal.SIGHUP)
        wait_for(lambda: kg.log().count("reloaded ") > reloads, 30, what="the SIGHUP reload")
        assert "reload: cluster extra removed" in kg.log()
        assert "extra" not in [c["name"] for c in kg.status()["clusters"]]
        assert "only-b" in topics_of(kg.bootstrap("default"))
        run.check_healthy()
        assert run.error_count() == 0, run.diagnostics()
    finally:
        run.stop()


def held(kg, n):
    """N client connections to kgate, each past an ApiVersions exchange."""
    host, port = kg.bootstrap("default").rsplit(":", 1)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, int(port)), timeout=10)
        round_trip(s, api_versions_v0(i + 1))
        socks.append(s)
    return socks


@pytest.mark.guard(120)
def test_limits_apply_to_new_connections(sides, make_kgate):
    """limits.max_connections lowered by a reload: connections open before stay and work, a new
    one over the new limit is refused; raised again, new ones are accepted."""
    kg = make_kgate({"east": sides["east-a"], "west": sides["west"]},
                    extra_lines=["limits: { max_connections: 50 }"])
    before = held(kg, 4)
    with open(kg.config_path) as f:
        text = f.read()
    with open(kg.config_path, "w") as f:
        f.write(text.replace("max_connections: 50", "max_connections: 2"))
    reply = kg.http("POST", "/v1/reload")
    assert reply.status == 200, reply
    assert [a for a in reply.json["applied"] if a.startswith("limits: max_connections 2,")], \
        reply.json
    for i, s in enumerate(before):  # over the new limit, but opened under the old one: kept
        round_trip(s, api_versions_v0(100 + i))
    extra = socket.create_connection(("127.0.0.1", int(kg.bootstrap("default").rsplit(":")[1])),
                                     timeout=10)
    assert wait_closed_by_peer(extra, 30), "a connection over the new limit was accepted"
    assert "limits.max_connections (2) reached" in kg.log()
    with open(kg.config_path, "w") as f:
        f.write(text)
    assert kg.http("POST", "/v1/reload").status == 200
    for s in held(kg, 2) + before:
        round_trip(s, api_versions_v0(200))
        s.close()
