"""A throwaway PostgreSQL 15 server for tests: Debian's initdb and pg_ctl in a temporary
directory, no system service.

initdb refuses to run as root (CI runs the tests as root), so when we are root the server runs
as `nobody` through runuser, in a directory nobody owns. It listens on a free TCP port of
127.0.0.1 and on a socket in its own directory.

Roles:
  kgate     superuser, trust on 127.0.0.1 (what most tests connect as)
  kgate_pw  login with a password, scram-sha-256 (bad-password tests)

    server = PgServer(); server.start()
    url = server.create_database("t1")   # postgresql://kgate@127.0.0.1:PORT/t1
    server.stop(); server.start()        # a restart: same port, same data
    server.cleanup()
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("KGATE_PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = os.path.join(PG_BIN, "psql") if os.path.exists(os.path.join(PG_BIN, "psql")) \
    else "/usr/bin/psql"
PASSWORD_ROLE = "kgate_pw"
PASSWORD = "pw-Zq81-never-in-logs"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, base=None):
        self.root = tempfile.mkdtemp(prefix="kgate-pg-", dir=base)
        self.data = os.path.join(self.root, "data")
        self.sockdir = os.path.join(self.root, "sock")
        self.log = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        self.user = None  # run as this OS user (None: as ourselves)
        if os.geteuid() == 0:
            self.user = "nobody"
            os.chmod(self.root, 0o755)
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self._initdb()

    # ---- processes

    def _as_user(self, argv):
        return ["runuser", "-u", self.user, "--"] + argv if self.user else argv

    def _run(self, argv, **kw):
        return subprocess.run(self._as_user(argv), check=True, capture_output=True, text=True,
                              cwd=self.root, **kw)

    def _initdb(self):
        os.makedirs(self.sockdir, exist_ok=True)
        if self.user:
            nobody = pwd.getpwnam(self.user)
            os.chown(self.sockdir, nobody.pw_uid, nobody.pw_gid)
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                   "--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        # The password role first: pg_hba.conf is matched top down.
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            rest = f.read()
        with open(hba, "w") as f:
            f.write(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + rest)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    "max_connections = 200\nfsync = off\n")

    def start(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "120", "start"])
        if not getattr(self, "_roles_made", False):
            self.sql(f"CREATE ROLE kgate SUPERUSER LOGIN; "
                     f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
            self._roles_made = True

    def stop(self, mode="fast"):
        """mode "immediate" is a crash (no clean shutdown of the server's connections)."""
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t",
                   "120", "stop"])

    def running(self):
        r = subprocess.run(self._as_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data,
                                          "status"]), capture_output=True, cwd=self.root)
        return r.returncode == 0

    def cleanup(self):
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- SQL

    def sql(self, statement, db="postgres", user="postgres"):
        """Runs STATEMENT with psql over the socket; returns its rows as lists of strings."""
        r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-h", self.sockdir, "-p", str(self.port), "-U", user, "-d", db,
                            "-c", statement], capture_output=True, text=True, cwd="/")
        if r.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {r.stderr.strip()}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def url(self, db, user="kgate", password=None, query=""):
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}{query}"

    def create_database(self, name):
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql(f'CREATE DATABASE "{name}" OWNER kgate')
        return self.url(name)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.sql("SELECT 1")
                return
            except RuntimeError:
                time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not come back")


class PsqlConnection:
    """Just enough of a DB-API connection (execute/fetchone/fetchall, `with`, close) over psql,
    for tests written against sqlite3 to read and tamper with a kgate database the same way:
    `?` parameters (quoted as SQL literals), autocommit; values that look like integers come
    back as int, the rest as str."""

    def __init__(self, server, db):
        self.server, self.db, self._rows = server, db, []

    @staticmethod
    def _literal(value):
        if isinstance(value, int):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    def execute(self, sql, params=()):
        parts = sql.split("?")
        assert len(parts) == len(params) + 1, (sql, params)
        text = parts[0] + "".join(self._literal(p) + rest for p, rest in zip(params, parts[1:]))
        rows = self.server.sql(text, db=self.db)
        self._rows = [tuple(int(v) if re.fullmatch(r"-?\d{1,18}", v) else v for v in r)
                      for r in rows]
        return self

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return self._rows

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
