"""The failover scenario every client test runs: clients produce and consume through kgate, the
test switches the virtual cluster to the other side and back, and checks each switch on the
clusters themselves (read directly, bypassing kgate).

What "no request reached the old cluster after the switch returned" is checked with:
  - the old cluster's end offsets of the client's topic, read right after the switch returned,
    must not grow afterwards, and the consumer group's committed offsets there must not change;
  - no message the client library was handed after the switch returned is stored on the old
    cluster (a precise, race-free form of the same check).

A consumer group resumes on the new side with no gap (every acknowledged message reaches it) and
reads again only what it had read on that side after its last commit there (checked against the
offsets it had committed when it left that side: no auto.offset.reset applied, no position
carried over from the other cluster); how many it read again is printed.

No client may die or be replaced: every wait polls ClientRun.check_healthy() (a fatal event, a
second producer or consumer, a client process gone or a driver exited fails at once), each
switch must leave the same client instances (for kcat: the same kcat processes) alive, and every
driver must exit cleanly (0) at the end. A produce error (nack) is allowed only during a switch's
transition, bounded by events: for a message the library was handed before every partition of
its topic had a produce acknowledged by the new side after that switch (e.g. kafka-python,
retries=0 by default, gives up on a batch sent to a partition whose leader differs on the new
cluster until its metadata for that partition is fresh), reported after the switch was called.
Any other nack fails the run.
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
        # (t_call, t_ret, {client kind: when every partition had an ack from the new side})
        self.switches = []
        # {(client kind, cluster name): {partition: committed offset}} when the group left it
        self.left_commits = {}
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

    def wait(self, predicate, what, diagnostics=None):
        """wait_until, failing at once when any client died."""
        def healthy_and(pred):
            for r in self.runs:
                r.check_healthy()
            return pred()
        wait_until(lambda: healthy_and(predicate), self.wait_seconds, what,
                   diagnostics or self.diagnostics)

    # -- steps ---------------------------------------------------------------------------------

    def warm_up(self):
        self.wait(lambda: all(len(r.ack_times()) >= self.warmup_acks
                              and (r.received() or not r.consume) for r in self.runs),
                  "every client to produce and consume before the switch")

    def switch(self, action, target):
        """One switch and every check of it. Returns {client kind: timing dict}."""
        before = self.kgate.vcluster_status(self.vcluster)
        old = self.clusters[before["active"]]
        new = self.clusters[target]
        assert old is not new, f"{target} is already active"
        for r in self.runs:
            r.check_healthy()
        clients_before = {r.kind: r.client_identity() for r in self.runs}

        reply, t_call, t_ret = self.kgate.switch(
            self.vcluster, failback=(action == "failback"),
            to=(target if action == "failover" else None),
            reason=f"{self.label} {action} to {target}")
        # Snapshot the old side first: it must not change from this moment on.
        old_ends = {r.kind: old.end_offsets(r.topic) for r in self.runs}
        old_commits = {r.kind: old.committed(r.topic, r.group) if r.consume else None
                       for r in self.runs}
        self.switches.append((t_call, t_ret, {}))
        for r in self.runs:
            if r.consume:
                self.left_commits[(r.kind, old.name)] = old_commits[r.kind]

        assert reply.status == 200, reply
        body = reply.json
        assert body["changed"] is True, body
        assert (body["from"], body["to"]) == (old.name, new.name), body
        assert body["epoch"] == before["epoch"] + 1, body
        print_flush(f"[{self.label}] {action} {old.name} -> {new.name}: epoch {body['epoch']}, "
                    f"{body['connections_closed']} connections closed in {body['duration_ms']} ms")

        self.wait(lambda: all(len(r.acked_sent_after(t_ret)) >= self.acks_per_phase
                              for r in self.runs),
                  f"every producer to have {self.acks_per_phase} messages acknowledged after "
                  f"the {action} to {new.name}")

        timings = {}
        for r in self.runs:
            timings[r.kind] = self._check_client(r, action, old, new, t_call, t_ret,
                                                 old_ends[r.kind], old_commits[r.kind], body)
        for r in self.runs:
            r.check_healthy()
            after = r.client_identity()
            assert after == clients_before[r.kind], (
                f"{r.kind}: the {action} replaced a client: {clients_before[r.kind]} before, "
                f"{after} after\n{r.diagnostics()}")
            print_flush(f"[{self.label}] {r.kind}: the same clients before and after the "
                        f"{action}, alive: {after}")
        return timings

    def _check_client(self, run, action, old, new, t_call, t_ret, old_ends, old_commits, body):
        acked_after = run.acked_sent_after(t_ret)
        on_new = new.seqs(run.topic, run.run_id)
        missing = sorted(acked_after - set(on_new))
        assert not missing, (f"{run.kind}: {len(missing)} of {len(acked_after)} messages "
                             f"acknowledged after the {action} are not on {new.name}: "
                             f"{missing[:20]}\n{self.diagnostics()}")
        acks = run.ack_times()
        misplaced = [(s, acks[s][1:], on_new[s]) for s in sorted(acked_after)
                     if acks[s][1:] not in on_new[s]]
        assert not misplaced, (f"{run.kind}: messages acknowledged at a partition/offset where "
                               f"{new.name} does not store them (seq, acked at, stored at): "
                               f"{misplaced[:10]}\n{self.diagnostics()}")

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
        if run.consume:
            commits_now = old.committed(run.topic, run.group)
            assert commits_now == old_commits, (
                f"{run.kind}: the group's committed offsets on the old cluster {old.name} "
                f"changed after the {action} returned: {old_commits} -> {commits_now}")

            self.wait(lambda: acked_after <= set(run.received()),
                      f"{run.kind}'s consumer group to receive the {len(acked_after)} messages "
                      f"acknowledged on {new.name}",
                      lambda: self.missing_report(run, acked_after, new, t_call))

            dups = self._check_duplicates(run, action, new, t_call, on_new)
        timing = self._timing(run, action, old, new, t_call, t_ret, on_new, body)
        timing["duplicates"] = dups if run.consume else 0
        self.switches[-1][2][run.kind] = self._settled(run, t_call, on_new)
        SWITCH_TIMINGS.append(timing)
        print_flush(f"[{self.label}] {run.kind}: {action} -> first acknowledged produce on "
                    f"{new.name} {timing['first_ack_ms']:.0f} ms after the call "
                    f"({timing['first_ack_after_return_ms']:.0f} ms after it returned), first "
                    f"record consumed {timing['first_recv_ms']:.0f} ms after the call, "
                    f"{timing['nacks']} produce errors, "
                    f"{timing['client_errors']} non-fatal client errors so far")
        return timing

    def _check_duplicates(self, run, action, new, t_call, on_new):
        """Records the group reads again after a switch must come from where it last committed on
        that side, never from before it (an auto.offset.reset to earliest, or a position
        carried over from the other cluster): duplicates bounded by its commit interval.
        Returns how many records it read again."""
        before = {s for s, t, _, _ in run.receipts_since(0) if t < t_call}
        again = [(s, p, o) for s, _, p, o in run.receipts_since(t_call)
                 if s in before and (p, o) in on_new.get(s, ())]
        commits = self.left_commits.get((run.kind, new.name))
        if commits is not None:
            below = [(s, p, o) for s, p, o in again if o < commits.get(p, 0)]
            assert not below, (
                f"{run.kind}: after the {action} to {new.name} the group read again records below "
                f"the offsets it had committed there when it left ({commits}): "
                f"{below[:10]}\n{self.diagnostics()}")
        print_flush(f"[{self.label}] {run.kind}: {action} -> {len(again)} records read again "
                    f"on {new.name} (from its committed offsets there: {commits})")
        return len(again)

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

    @staticmethod
    def _settled(run, t_call, on_new):
        """The end of a switch's transition for run: the moment each partition of its topic had
        a produce acknowledged by the new side (stored there) after the call; a partition with
        no such ack yet does not extend it."""
        first = {}
        for s, (t, p, _) in run.ack_times().items():
            if t >= t_call and s in on_new:
                first[p] = min(first.get(p, t), t)
        return max(first.values())

    def _timing(self, run, action, old, new, t_call, t_ret, on_new, body):
        acks = run.ack_times()
        first_ack = min(t for s, (t, _, _) in acks.items() if t >= t_call and s in on_new)
        # A record counts as served by the new side when the new cluster stores that message at
        # that partition and offset.
        first_recv = min((t for s, t, p, o in run.receipts_since(t_call)
                          if (p, o) in on_new.get(s, ())), default=None)
        return {"client": run.kind, "scenario": self.label, "action": action,
                "from": old.name, "to": new.name, "switch_ms": body["duration_ms"],
                "first_ack_t": first_ack, "first_ack_ms": (first_ack - t_call) * 1000.0,
                "first_ack_after_return_ms": (first_ack - t_ret) * 1000.0,
                "first_recv_ms": (first_recv - t_call) * 1000.0 if first_recv else float("nan"),
                "nacks": len(run.nacks_between(t_call, first_ack)),
                "client_errors": run.error_count()}

    def check_no_gaps(self, cluster_name):
        """Every message stored on cluster_name (the side active at the end) reaches the consumer
        group at least once: consumer positions carried over from the other cluster must not
        make the group skip records it never read on this one."""
        cluster = self.clusters[cluster_name]
        for r in self.runs:
            if not r.consume:
                continue
            stored = set(cluster.seqs(r.topic, r.run_id))
            self.wait(lambda: stored <= set(r.received()),
                      f"{r.kind}'s consumer group to receive every message stored on "
                      f"{cluster_name}",
                      lambda: self.missing_report(r, stored, cluster, 0))

    def check_nacks(self):
        """A nack is allowed only in a switch's transition: reported after the switch was called,
        for a message handed to the library before every partition had an acknowledged produce
        on the new side after that switch (Scenario._settled)."""
        for r in self.runs:
            sent = r.sent_times()
            with r.lock:
                nacks = list(r.nacked)
            unexplained = []
            for seq, t_nack, err in nacks:
                calls = [(c, first[r.kind]) for c, _, first in self.switches if c <= t_nack]
                if not calls or sent.get(seq, float("inf")) > calls[-1][1]:
                    unexplained.append((seq, round(sent.get(seq, 0) - (calls[-1][0] if calls
                                                                        else 0), 3), err))
            assert not unexplained, (
                f"{r.kind}: produce errors outside a switch's transition (seq, s sent after the "
                f"last switch call, error): {unexplained[:10]}\n{r.diagnostics()}")

    def run(self, steps=(("failover", "west"), ("failback", "east"))):
        first = self.clusters[self.kgate.vcluster_status(self.vcluster)["active"]]
        for r in self.runs:
            assert r.partitions == first.topics[r.topic], (r.kind, r.partitions, first.topics)
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
                r.check_healthy()
            self.check_nacks()
            for r in self.runs:
                r.finish()
        finally:
            for r in self.runs:
                r.stop()
