"""Consumer groups resume on the new side fast (issue 10, item 7c): every client library of the
matrix through a failover east -> west and a failback within the session timeout, on librdkafka
2.12 mock clusters set up as a DR cluster whose consumers must resume fast
(`kgate dev-cluster --group-initial-rebalance-delay-ms 0`, Kafka's
group.initial.rebalance.delay.ms=0) and with the client settings docs/runbook.md gives a DR team
(DR_CONSUMER_CONFIG: a heartbeat every second, a 6 s session timeout).

Three switches: a failover to west, a failback to east within the session timeout (a few seconds
later), and a failover to west again once the session timeout has passed since the failback.
On the librdkafka mock the failback is slower than on Kafka: kgate's LeaveGroup for the member
it had on east (switch.leave_groups) leaves that group "joining" for the session timeout minus
1 s (a Kafka broker empties it at once), and a join in that time waits for the rest of it. The
third switch shows the same client without that wait.

Checked (scenario.py): no gap, records read again only from the group's last commit on that side
(duplicates bounded by its commit interval), nothing reaches the old side; and here, that the
group rejoined on the new side once (its consumer got one new assignment after the switch call,
no later than its first record from the new side).

Measured, never asserted (a noisy shared 2-core machine): the time from the switch call to the
rejoin and to the first record from the new side, per client and direction. Printed, written to
consumer_resume.json in the test's directory and appended to $KGATE_RESUME_RESULTS when set
(bench/run's consumer_resume workload)."""

import json
import os
import time

import pytest

from fohelpers import ClientRun, print_flush
from scenario import Scenario
from test_fo_clients import CONSUMER_API_KEYS, PRODUCER_API_KEYS, skip_unless_backends_serve

SESSION_S = 6  # the drivers' session.timeout.ms
STEPS = (("failover", "west"), ("failback", "east"), ("failover", "west"))
# rdk212: librdkafka 2.12 as the client (build/deps/rdk-driver-2.12, tests/integration/clients)
KINDS = ["kcat", "confluent", "rdk212", "kafka-python", "kafkajs", "platformatic"]
# What a DR team sets on its consumers (docs/runbook.md, "Consumers that must resume within 2 s"):
# librdkafka and kafka-python rejoin at their next heartbeat (nothing else starts it), so a 1 s
# interval bounds that wait; KafkaJS's maxWaitTimeInMs bounds each restart of its fetchers
# (they wait for those sleeping that long); the session timeout stays 6 s (the drivers' own,
# Kafka's minimum group.min.session.timeout.ms).
DR_CONSUMER_CONFIG = {
    "kcat": {"heartbeat.interval.ms": 1000},
    "confluent": {"heartbeat.interval.ms": 1000},
    "rdk212": {"heartbeat.interval.ms": 1000},
    "kafka-python": {"heartbeat_interval_ms": 1000},
    "kafkajs": {"heartbeatInterval": 1000, "maxWaitTimeInMs": 500},
    "platformatic": {"heartbeatInterval": 1000},
}


class ResumeScenario(Scenario):
    """Scenario, plus: after each switch the group rejoined on the new side, and the times."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = []

    def switch(self, action, target):
        if len(self.results) == 2 * len(self.runs):  # the third switch: after the session timeout
            time.sleep(max(0.0, self.results[-1]["t_call"] + SESSION_S + 0.5 - time.time()))
        t_before = self.kgate.vcluster_status(self.vcluster)
        timings = super().switch(action, target)
        t_call = self.switches[-1][0]
        for r in self.runs:
            t = timings[r.kind]
            joins = r.joins_since(t_call)
            assert joins, (f"{r.kind}: its consumer got no new assignment after the {action} "
                           f"to {target}: it did not rejoin its group there\n"
                           f"{self.diagnostics()}")
            # Once: a second rejoin restarts the group's rebalance (KafkaJS did, on a Heartbeat
            # the new side answered ILLEGAL_GENERATION while its JoinGroup waited; kg_rejoin).
            assert len(joins) == 1, (f"{r.kind}: rejoined {len(joins)} times after the {action} "
                                     f"to {target} (s after the call: "
                                     f"{[round(j - t_call, 3) for j in joins]})\n"
                                     f"{self.diagnostics()}")
            first_recv = t_call + t["first_recv_ms"] / 1000.0
            assert min(joins) <= first_recv, (
                f"{r.kind}: records from {target} before its group rejoined there (joined "
                f"{min(joins) - t_call:.3f} s, first record {first_recv - t_call:.3f} s after "
                f"the call)\n{self.diagnostics()}")
            previous = self.results[-1]["t_call"] if self.results else None
            self.results.append({
                "step": len(self.results) // len(self.runs) + 1,
                "client": r.kind, "action": action, "from": t_before["active"], "to": target,
                "t_call": t_call,
                "since_previous_switch_s": (t_call - previous) if previous else None,
                "rejoin_ms": (min(joins) - t_call) * 1000.0,
                "first_record_ms": t["first_recv_ms"],
                "first_ack_ms": t["first_ack_ms"],
                "read_again": t["duplicates"],
                "rejoins": len(joins),
            })
            print_flush(f"[{self.label}] {r.kind}: {action} -> rejoined "
                        f"{(min(joins) - t_call) * 1000:.0f} ms, first record from {target} "
                        f"{t['first_recv_ms']:.0f} ms after the call; {len(joins)} "
                        f"assignment(s) since the call")
        return timings


def write_results(results, path, extra):
    rows = [{**extra, **{k: v for k, v in r.items() if k != "t_call"}} for r in results]
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


@pytest.mark.guard(200)
@pytest.mark.parametrize("kind", KINDS)
def test_consumer_resumes_fast(kind, make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east="2.12", west="2.12", rebalance_delay_ms=0)
    for c in clusters.values():
        assert c.librdkafka_version.startswith("2.12"), (c.name, c.librdkafka_version)
        assert "group.initial.rebalance.delay.ms 0" in c.proc.stderr_text(), c.name
    if kind == "platformatic":
        skip_unless_backends_serve(clusters, {**PRODUCER_API_KEYS, **CONSUMER_API_KEYS},
                                   "producer and consumer group")
    kg = make_kgate(clusters)
    run = ClientRun(kind, kg.bootstrap("default"), f"fo-{kind}", tmp_path,
                    consumer_config=DR_CONSUMER_CONFIG[kind])
    if kind == "kafkajs" and os.environ.get("KGATE_KAFKAJS_DEBUG"):
        run.args["log_level"] = "DEBUG"  # what it waits for, in driver-kafkajs.stderr
    sc = ResumeScenario(kg, clusters, [run], label=f"resume {kind}")
    sc.run(steps=STEPS)
    assert [(r["action"], r["to"]) for r in sc.results] == list(STEPS), sc.results
    extra = {"mock": "2.12", "group_initial_rebalance_delay_ms": 0,
             "consumer_config": DR_CONSUMER_CONFIG[kind]}
    write_results(sc.results, tmp_path / "consumer_resume.json", extra)
    if os.environ.get("KGATE_RESUME_RESULTS"):
        write_results(sc.results, os.environ["KGATE_RESUME_RESULTS"], extra)
