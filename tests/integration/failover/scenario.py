"""The failover scenario every client test runs: clients produce and consume through kgate, the
test switches the virtual cluster to the other side and back, and checks each switch on the
clusters themselves (read directly, bypassing kgate).

What "no request reached the old cluster after the switch returned" is checked with:
  - the old cluster's end offsets of the client's topic, read right after the switch returned,
    must not grow afterwards, and the consumer group's committed offsets there must not change;
  - no message the client library was handed after the switch returned is stored on the old
    cluster (a precise, race-free form of the same check).
"""

import time

from fohelpers import SWITCH_TIMINGS, print_flush, seq_of, tail

FILL_PER_PARTITION = 400


def wait_until(predicate, timeout, what, diagnostics, interval=0.1):
    """Polls predicate (a bounded wait, never a timing assertion); on timeout, fails with what
    and diagnostics() evaluated at that moment."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{diagnostics()}")
        time.sleep(interval)


class Scenario:
    def __init__(self, kgate, clusters, runs, vcluster="default", label="",
                 acks_per_phase=15, warmup_acks=20, wait_seconds=120):
        self.kgate = kgate
        self.clusters = clusters  # {name: DevCluster}
        self.runs = runs
        self.vcluster = vcluster
        self.label = label
        self.acks_per_phase = acks_per_phase
        self.warmup_acks = warmup_acks
        self.wait_seconds = wait_seconds

    def diagnostics(self):
        parts = [r.diagnostics() for r in self.runs]
        parts.append("kgate log:\n" + tail(self.kgate.log(), 4000))
        return "\n\n".join(parts)

    # -- steps ---------------------------------------------------------------------------------

    def warm_up(self):
        wait_until(lambda: all(len(r.ack_times()) >= self.warmup_acks and r.received()
                               for r in self.runs),
                   self.wait_seconds, "every client to produce and consume before the switch",
                   self.diagnostics)

    def switch(self, action, target):
        """One switch and every check of it. Returns {client kind: timing dict}."""
        before = self.kgate.vcluster_status(self.vcluster)
        old = self.clusters[before["active"]]
        new = self.clusters[target]
        assert old is not new, f"{target} is already active"

        reply, t_call, t_ret = self.kgate.switch(
            self.vcluster, failback=(action == "failback"),
            to=(target if action == "failover" else None),
            reason=f"{self.label} {action} to {target}")
        # Snapshot the old side first: it must not change from this moment on.
        old_ends = {r.kind: old.end_offsets(r.topic) for r in self.runs}
        old_commits = {r.kind: old.committed(r.topic, r.group) for r in self.runs}

        assert reply.status == 200, reply
        body = reply.json
        assert body["changed"] is True, body
        assert (body["from"], body["to"]) == (old.name, new.name), body
        assert body["epoch"] == before["epoch"] + 1, body
        print_flush(f"[{self.label}] {action} {old.name} -> {new.name}: epoch {body['epoch']}, "
                    f"{body['connections_closed']} connections closed in {body['duration_ms']} ms")

        wait_until(lambda: all(len(r.acked_sent_after(t_ret)) >= self.acks_per_phase
                               for r in self.runs),
                   self.wait_seconds,
                   f"every producer to have {self.acks_per_phase} messages acknowledged after "
                   f"the {action} to {new.name}", self.diagnostics)

        timings = {}
        for r in self.runs:
            timings[r.kind] = self._check_client(r, action, old, new, t_call, t_ret,
                                                 old_ends[r.kind], old_commits[r.kind], body)
        return timings

    def _check_client(self, run, action, old, new, t_call, t_ret, old_ends, old_commits, body):
        acked_after = run.acked_sent_after(t_ret)
        on_new = new.seqs(run.topic, run.run_id)
        missing = sorted(acked_after - set(on_new))
        assert not missing, (f"{run.kind}: {len(missing)} of {len(acked_after)} messages "
                             f"acknowledged after the {action} are not on {new.name}: "
                             f"{missing[:20]}\n{self.diagnostics()}")

        sent_after = run.sent_after(t_ret)
        on_old = old.seqs(run.topic, run.run_id)
        leaked = sorted(sent_after & set(on_old))
        assert not leaked, (f"{run.kind}: messages handed to the client after the {action} "
                            f"returned reached the old cluster {old.name}: {leaked[:20]}")
        ends_now = old.end_offsets(run.topic)
        assert ends_now == old_ends, (
            f"{run.kind}: the old cluster {old.name}'s end offsets grew after the {action} "
            f"returned: {old_ends} -> {ends_now}; records there: "
            f"{self._records_beyond(old, run, old_ends)}")
        commits_now = old.committed(run.topic, run.group)
        assert commits_now == old_commits, (
            f"{run.kind}: the group's committed offsets on the old cluster {old.name} changed "
            f"after the {action} returned: {old_commits} -> {commits_now}")

        wait_until(lambda: acked_after <= set(run.received()), self.wait_seconds,
                   f"{run.kind}'s consumer group to receive the {len(acked_after)} messages "
                   f"acknowledged on {new.name}",
                   lambda: self.missing_report(run, acked_after, new, t_call))

        timing = self._timing(run, action, old, new, t_call, t_ret, on_new, body)
        SWITCH_TIMINGS.append(timing)
        print_flush(f"[{self.label}] {run.kind}: {action} -> first acknowledged produce on "
                    f"{new.name} {timing['first_ack_ms']:.0f} ms after the call "
                    f"({timing['first_ack_after_return_ms']:.0f} ms after it returned), first "
                    f"record consumed {timing['first_recv_ms']:.0f} ms after the call, "
                    f"{timing['nacks']} produce errors, "
                    f"{timing['consumer_restarts']} consumer replacements so far")
        return timing

    def missing_report(self, run, expected, cluster, since):
        """Which expected messages the group did not receive, where they are stored, and what
        the group received from those partitions since the switch."""
        missing = sorted(expected - set(run.received()))
        stored = cluster.seqs(run.topic, run.run_id)
        where = {s: stored.get(s) for s in missing[:20]}
        partitions = {p for s in missing[:20] for p, _ in stored.get(s, ())}
        receipts = [(s, round(t - since, 3), p, o) for s, t, p, o in run.receipts_since(since)
                    if p in partitions]
        return (f"not received: {missing[:20]}\nstored on {cluster.name} at: {where}\n"
                f"receipts since the switch (seq, s after the call, partition, offset) from those "
                f"partitions: {receipts[:60]}\n" + self.diagnostics())

    def _records_beyond(self, cluster, run, ends):
        sent = run.sent_times()
        out = []
        for p, o, value in cluster.read_all(run.topic):
            if o >= ends.get(p, 0):
                out.append((p, o, value, sent.get(seq_of(value, run.run_id))))
        return out[:20]

    def _timing(self, run, action, old, new, t_call, t_ret, on_new, body):
        acks = run.ack_times()
        first_ack = min(t for s, (t, _, _) in acks.items() if t >= t_call and s in on_new)
        # A record counts as served by the new side when the new cluster stores that message at
        # that partition and offset.
        first_recv = min((t for s, t, p, o in run.receipts_since(t_call)
                          if (p, o) in on_new.get(s, ())), default=None)
        return {"client": run.kind, "scenario": self.label, "action": action,
                "from": old.name, "to": new.name, "switch_ms": body["duration_ms"],
                "first_ack_ms": (first_ack - t_call) * 1000.0,
                "first_ack_after_return_ms": (first_ack - t_ret) * 1000.0,
                "first_recv_ms": (first_recv - t_call) * 1000.0 if first_recv else float("nan"),
                "nacks": len(run.nacks_between(t_call, first_ack)),
                "consumer_restarts": len(run.logs_matching("consumer replaced"))}

    def check_no_gaps(self, cluster_name):
        """Every message stored on cluster_name (the side active at the end) reaches the consumer
        group at least once: consumer positions carried over from the other cluster must not
        make the group skip records it never read on this one."""
        cluster = self.clusters[cluster_name]
        for r in self.runs:
            stored = set(cluster.seqs(r.topic, r.run_id))
            wait_until(lambda: stored <= set(r.received()), self.wait_seconds,
                       f"{r.kind}'s consumer group to receive every message stored on "
                       f"{cluster_name}",
                       lambda: self.missing_report(r, stored, cluster, 0))

    def run(self, steps=(("failover", "west"), ("failback", "east"))):
        first = self.clusters[self.kgate.vcluster_status(self.vcluster)["active"]]
        for topic in {r.topic for r in self.runs}:
            first.fill(topic, FILL_PER_PARTITION)
        for r in self.runs:
            r.start()
        try:
            self.warm_up()
            for action, target in steps:
                self.switch(action, target)
            self.check_no_gaps(steps[-1][1])
            for r in self.runs:
                assert r.alive(), f"{r.kind}'s driver exited early\n{r.diagnostics()}"
        finally:
            for r in self.runs:
                r.stop()
