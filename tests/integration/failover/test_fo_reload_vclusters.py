"""`kgate reload` adding and removing virtual clusters (issue 9, item 4; docs/config.md, "What
reload applies"): a vcluster added by a reload listens on its ports and serves at once, one
removed closes its ports and its connections, and neither disturbs a client of another vcluster;
a file that cannot be applied (invalid, or a new vcluster's port taken) changes nothing.

One kgate in front of two dev clusters; vcluster "default" serves a producer throughout, "bee"
comes and goes."""

import os
import signal
import socket
import time

import pytest

from fohelpers import ClientRun
from kghelpers import api_versions_v0, round_trip, wait_for

TOPIC = "fo-misc"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def without_vcluster(text, name):
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(f"  {name}: {{ port:")]
    assert len(kept) == len(lines) - 1, text
    return "".join(kept)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def vcluster_names(kg):
    return [vc["name"] for vc in kg.status()["vclusters"]]


@pytest.mark.guard(300)
def test_vclusters_added_and_removed_by_reload(make_clusters, make_kgate, tmp_path):
    clusters = make_clusters()
    kg = make_kgate(clusters, vclusters=[("default", "east", "west"), ("bee", "east", "west")],
                    start=False)
    with open(kg.config_path) as f:
        full = f.read()
    alone = without_vcluster(full, "bee")
    write(kg.config_path, alone)
    bee_port = kg.ports.pop("bee")  # start() waits for every port in kg.ports
    kg.start()
    kg.ports["bee"] = bee_port
    assert vcluster_names(kg) == ["default"]
    assert refused(bee_port)

    run_a = ClientRun("confluent", kg.bootstrap("default"), TOPIC, tmp_path, consume=False,
                      label="on-default").start()
    run_b = None
    try:
        wait_for(lambda: (run_a.check_healthy() or True) and len(run_a.ack_times()) >= 20, 60,
                 what="the producer on vcluster default")

        # Added: listens, routes, is in the status and the metrics.
        write(kg.config_path, full)
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        assert [a for a in reply.json["applied"] if a.startswith("vcluster bee added:")], \
            reply.json
        assert "needs_restart" not in reply.json, reply.json
        assert vcluster_names(kg) == ["default", "bee"]
        bee = kg.vcluster_status("bee")
        assert bee["active"] == "east" and bee["port"] == bee_port, bee
        run_b = ClientRun("confluent", kg.bootstrap("bee"), TOPIC, tmp_path, consume=False,
                          label="on-bee").start()
        wait_for(lambda: (run_b.check_healthy() or True) and len(run_b.ack_times()) >= 20, 60,
                 what="a producer through the added vcluster bee")
        wait_for(lambda: 'kgate_vcluster_active{vcluster="bee"' in kg.http("GET", "/metrics").text,
                 30, what="bee's metrics")
        reply = kg.http("GET", "/v1/vclusters/bee/history")
        assert reply.status == 200, reply

        # Refused, nothing changed: a file that does not load, and a new vcluster whose port is
        # taken (by a socket of this test).
        write(kg.config_path, full.replace("primary: east, secondary: west }\n",
                                           "primary: nowhere, secondary: west }\n", 1))
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 400 and "not reloaded" in reply.json["error"], reply
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken_port = squatter.getsockname()[1]
        write(kg.config_path, full.replace(
            "vclusters:\n", f"vclusters:\n  cee: {{ port: {taken_port}, primary: east }}\n", 1))
        reply = kg.http("POST", "/v1/reload")
        squatter.close()
        assert reply.status == 400, reply
        assert f"cannot listen on 127.0.0.1:{taken_port} for vcluster cee" in \
            reply.json["error"], reply
        assert vcluster_names(kg) == ["default", "bee"]
        # A running vcluster changed where it routes (its secondary dropped): named as taking a
        # restart, nothing else moves.
        write(kg.config_path, full.replace("primary: east, secondary: west }\n",
                                           "primary: east }\n", 1))
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        assert [n for n in reply.json["needs_restart"] if n.startswith(
            "vcluster default: port, node ids, TLS port, primary or secondary changed")], reply.json
        assert "applied" not in reply.json, reply.json
        assert kg.vcluster_status("default")["secondary"] == "west"
        write(kg.config_path, full)
        n_b = len(run_b.ack_times())
        wait_for(lambda: len(run_b.ack_times()) >= n_b + 20, 60,
                 what="bee serving on after the refused reloads")

        # Removed (by SIGHUP): its port refuses, its client is disconnected and cannot get back;
        # default's producer never notices.
        write(kg.config_path, alone)
        reloads = kg.log().count("reloaded ")
        t_removed = time.time()
        os.kill(kg.proc.pid, signal.SIGHUP)
        wait_for(lambda: kg.log().count("reloaded ") > reloads, 30, what="the SIGHUP reload")
        assert "vcluster bee removed: its ports closed" in kg.log()
        assert vcluster_names(kg) == ["default"]
        assert refused(bee_port)
        # Its producer's acks stop: nothing it sends after the removal is acknowledged.
        wait_for(lambda: len(run_b.sent_after(t_removed + 1)) >= 10, 60,
                 what="bee's producer to go on sending")
        late = run_b.acked_sent_after(t_removed + 1)
        assert late == set(), f"acks through bee after its removal: {len(late)}"
        n_a = len(run_a.ack_times())
        wait_for(lambda: len(run_a.ack_times()) >= n_a + 50, 60,
                 what="default's producer after bee's removal")
        run_a.check_healthy()
        assert run_a.error_count() == 0 and run_a.nacked == [], run_a.diagnostics()

        # Added back under the same name: serves again (the same series in /metrics).
        write(kg.config_path, full)
        reply = kg.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        host, port = kg.bootstrap("bee").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            round_trip(s, api_versions_v0(7))
        run_a.check_healthy()
        assert run_a.error_count() == 0 and run_a.nacked == [], run_a.diagnostics()
        assert kg.vcluster_status("default")["epoch"] == 0  # no switch happened
    finally:
        run_a.stop()
        if run_b:
            run_b.stop()
