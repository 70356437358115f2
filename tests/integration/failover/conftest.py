"""Fixtures of the failover tests (issue 3): two dev clusters ("east" and "west") and kgates in
front of them. Every test that starts a kgate is skipped with KGATE_TEST_DIRECT=1.
The helpers live in fohelpers.py (processes, direct cluster access, admin API, client drivers)
and scenario.py (the switch-while-producing scenario)."""

import os
import sys

import pytest

from fofixtures import (TOPICS, kgate_binary, make_clusters, make_kgate,  # noqa: F401 (fixtures)
                        mark_kgate_only)
from fohelpers import FAILOVER_DIR, SWITCH_TIMINGS

sys.path.insert(0, os.path.join(os.path.dirname(FAILOVER_DIR), "fleet"))
from pgfixtures import pg_server, pg_url  # noqa: E402,F401 (fixtures)


def pytest_collection_modifyitems(config, items):
    mark_kgate_only(items, FAILOVER_DIR)


@pytest.fixture(params=["sqlite", "postgres"])
def state_location(request):
    """A test taking this runs on both state stores: None (kgate's default, an SQLite file in
    its work directory) or the URL of a fresh PostgreSQL database (fleet/pgfixtures.py)."""
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def pytest_terminal_summary(terminalreporter):
    if not SWITCH_TIMINGS:
        return
    tr = terminalreporter
    tr.section("kgate failover: switch -> first acknowledged produce on the new side")
    tr.write_line(f"{'scenario':<24} {'client':<15} {'switch':<16} {'kgate ms':>9} "
                  f"{'ack ms':>8} {'ack-ret ms':>10} {'consume ms':>10} {'prod errs':>9} "
                  f"{'errors':>6} {'dups':>5}")
    for t in SWITCH_TIMINGS:
        tr.write_line(f"{t['scenario']:<24} {t['client']:<15} "
                      f"{t['from'] + ' -> ' + t['to']:<16} {t['switch_ms']:>9.2f} "
                      f"{t['first_ack_ms']:>8.0f} {t['first_ack_after_return_ms']:>10.0f} "
                      f"{t['first_recv_ms']:>10.0f} {t['nacks']:>9} {t['client_errors']:>6} "
                      f"{t.get('duplicates', 0):>5}")
    tr.write_line("ack ms: from the failover/failback call to the client's first acknowledged "
                  "produce stored on the new side; ack-ret ms: the same from the call's return; "
                  "consume ms: to the group's first record from the new side; prod errs: "
                  "produce errors the client reported before that first ack; errors: non-fatal errors "
                  "the clients reported and recovered from by themselves so far (a client that "
                  "dies or is replaced fails the test); dups: records the group read again on "
                  "the new side (only from its last commit there: checked).")
