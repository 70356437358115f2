"""1,000 concurrent client connections held open, then closed: kgate's descriptors and memory
return to where they were (a leak check, not a timing check)."""

import resource
import socket

import pytest

from kghelpers import (api_versions_v0, is_sanitized, metadata_v1_all_topics,
                       parse_api_versions_v0, proc_fd_count, proc_rss_kb, round_trip, wait_for)

CONNECTIONS = 1000
# Descriptors kgate may legitimately hold beyond the baseline afterwards (a health probe or a
# pooled backend connection in flight at the moment of measurement).
FD_SLACK = 8
# Memory: the first cycle may grow the heap (allocator arenas, buffers kept for reuse); a leak
# shows as growth that continues cycle after cycle. Allowed growth over two further cycles
# (2,000 connections): 4 MiB, i.e. about 2 KiB per connection.
RSS_CYCLE_SLACK_KB = 4096
# And the first cycle must not keep more than this (a bound on per-connection retention).
RSS_FIRST_CYCLE_SLACK_KB = 64 * 1024


def open_connections(bootstrap, count):
    host, port = bootstrap.split(":")
    socks = []
    try:
        for i in range(count):
            s = socket.create_connection((host, int(port)), timeout=15)
            s.settimeout(15)
            socks.append(s)
            error, apis = parse_api_versions_v0(round_trip(s, api_versions_v0(2 * i + 1)))
            assert error == 0 and 3 in apis, f"connection {i}: ApiVersions error {error}"
            resp = round_trip(s, metadata_v1_all_topics(2 * i + 2))
            assert len(resp) > 8, f"connection {i}: empty Metadata response"
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def stable_fd_count(pid, samples=5):
    """The fd count once it stopped changing (closes of earlier connections are asynchronous)."""
    history = []

    def stable():
        history.append(proc_fd_count(pid))
        return len(history) >= samples and len(set(history[-samples:])) == 1

    wait_for(stable, 30, interval=0.1, what="a stable fd count")
    return history[-1]


def settle_fds(pid, limit, what):
    return wait_for(lambda: proc_fd_count(pid) <= limit, 30, interval=0.1,
                    what=f"{what}: fd count back to <= {limit} (now {proc_fd_count(pid)})")


@pytest.mark.guard(300)
def test_1000_connections_leave_no_fd_or_memory_leak(kgate):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft > CONNECTIONS + 100, f"RLIMIT_NOFILE {soft} too low for this test"
    pid = kgate.pid

    # Warm up so lazily created state (worker buffers, backend metadata) is in the baseline.
    close_all(open_connections(kgate.bootstrap, 20))
    baseline_fds = stable_fd_count(pid)
    baseline_rss = proc_rss_kb(pid)

    rss_after = []
    for cycle in range(3):
        socks = open_connections(kgate.bootstrap, CONNECTIONS)
        try:
            held = proc_fd_count(pid)
            # Through kgate each client connection holds a client and a backend socket.
            expected = CONNECTIONS if kgate.direct else 2 * CONNECTIONS
            assert held >= baseline_fds + expected * 0.95, \
                f"cycle {cycle}: only {held - baseline_fds} extra descriptors while holding " \
                f"{CONNECTIONS} connections (is this the right process?)"
        finally:
            close_all(socks)
        settle_fds(pid, baseline_fds + FD_SLACK, f"cycle {cycle}")
        rss_after.append(proc_rss_kb(pid))
        assert kgate.direct or kgate.proc.alive()

    print(f"fds: baseline {baseline_fds}, after {proc_fd_count(pid)}; RSS KiB: baseline "
          f"{baseline_rss}, after each cycle {rss_after}")
    if not kgate.direct and is_sanitized(kgate.proc.argv[0]):
        return  # ASan's quarantine grows RSS by design; LeakSanitizer checks leaks at exit
    assert rss_after[0] - baseline_rss <= RSS_FIRST_CYCLE_SLACK_KB, \
        f"first cycle kept {rss_after[0] - baseline_rss} KiB"
    assert rss_after[2] - rss_after[0] <= RSS_CYCLE_SLACK_KB, \
        f"RSS kept growing: {rss_after} KiB after each cycle of {CONNECTIONS} connections"
