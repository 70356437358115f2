"""Fixtures of the fleet tests (issue 9): a real PostgreSQL 15 (pgserver.py) for the state store,
plus the failover tests' dev clusters and kgates (tests/integration/failover).

    pg_server   session-scoped PgServer, started once (as `nobody` when we are root)
    pg_url      a fresh database of it for this test: "postgresql://kgate@127.0.0.1:PORT/DB"
    make_clusters, make_kgate   the failover tests' (tests/integration/failover/fofixtures.py);
                make_kgate(..., state_path=<a postgres URL>) puts a kgate's state in PostgreSQL

A test that stops the server (faults) gets it started again by pg_url at teardown."""

import os
import sys

FLEET_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(FLEET_DIR), "failover"))

from fofixtures import (kgate_binary, make_clusters, make_kgate,  # noqa: E402,F401 (fixtures)
                        mark_kgate_only)
from pgfixtures import pg_server, pg_url  # noqa: E402,F401 (fixtures)


def pytest_collection_modifyitems(config, items):
    mark_kgate_only(items, FLEET_DIR)
