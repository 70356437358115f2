"""pytest fixtures of a real PostgreSQL 15 (pgserver.py), for any test directory: import them
into its conftest.py (tests/integration/fleet and tests/integration/failover do).

    pg_server   session-scoped PgServer, started once (as `nobody` when we are root)
    pg_url      a fresh database of it for this test: "postgresql://kgate@127.0.0.1:PORT/DB";
                a test that stopped the server gets it started again at teardown
"""

import hashlib
import os
import re

import pytest

from pgserver import PG_BIN, PgServer


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb): run scripts/install-deps")
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server, request):
    """A new, empty database for this test; the server is running again when the test ends."""
    # Readable and unique (parametrized names share long prefixes), within 63 characters.
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + digest
    url = pg_server.create_database(name)
    yield url
    if not pg_server.running():
        pg_server.start()
