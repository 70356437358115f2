"""Helpers shared by the integration suites (core, failover/, chaos/, experiments/): processes,
the kgate binary under test, dev clusters, kgate processes and their admin API, ports, raw Kafka
frames, a capturing relay.

Only the Python standard library is used here, so a failing client library never hides a harness
problem.
"""

import asyncio
import collections
import http.client
import json
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INTEGRATION_DIR = os.path.dirname(os.path.abspath(__file__))
KGATE_PORTS = 34  # per virtual cluster: its bootstrap port, node ids 0..31 and one spare
DIRECT = os.environ.get("KGATE_TEST_DIRECT") == "1"
KGATE_BIN = os.environ.get("KGATE_BIN", os.path.join(ROOT, "build", "kgate"))
DEPS = os.path.join(ROOT, "build", "deps")


def is_sanitized(binary):
    """True when `binary` was built with AddressSanitizer (make check): its allocator keeps freed
    memory in a quarantine, so resident-size checks only mean something in the plain build."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def devcluster_command(version):
    """argv of the dev cluster built with librdkafka `version` ("2.0.2" or "2.12").

    2.0.2 is `$KGATE_BIN dev-cluster` (Debian's librdkafka); KGATE_DEVCLUSTER_202 overrides it,
    and in direct mode build/deps/dev-cluster-2.0.2 stands in when kgate is not built."""
    if version == "2.12":
        path = os.path.join(DEPS, "dev-cluster-2.12")
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} missing: run scripts/test-setup")
        return [path]
    if version != "2.0.2":
        raise ValueError(f"unknown dev-cluster version {version!r}")
    override = os.environ.get("KGATE_DEVCLUSTER_202")
    if override:
        return shlex.split(override)
    if os.access(KGATE_BIN, os.X_OK):
        return [KGATE_BIN, "dev-cluster"]
    fallback = os.path.join(DEPS, "dev-cluster-2.0.2")
    if DIRECT and os.access(fallback, os.X_OK):
        return [fallback]
    raise FileNotFoundError(f"{KGATE_BIN} missing: build kgate (make build) or set KGATE_BIN")

# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process whose stderr goes to a file, read back for assertions and failure logs."""

    def __init__(self, argv, stderr_path, stdout=subprocess.PIPE, env=None):
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=stdout, stderr=self._stderr, env=env)
        self.pid = self.popen.pid

    def stderr_text(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.popen.poll() is None

    def read_stdout_line(self, timeout):
        """First line of stdout, or raise with the stderr so far when none comes in time."""
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.popen.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.argv[0]}: no stdout line within {timeout}s; stderr:\n"
                                   + self.stderr_text())
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"{self.argv} exited (rc={self.popen.wait()}) before "
                                       f"printing a line; stderr:\n" + self.stderr_text())
                buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit code (SIGKILL after the timeout, code then None)."""
        exited = sigterm_and_wait(self.popen, timeout)
        self._stderr.close()
        return self.popen.returncode if exited else None

    def kill9(self):
        """SIGKILL (a crash, no clean shutdown) and wait; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(20)
        if not self._stderr.closed:
            self._stderr.close()
        return self.popen.returncode


def sigterm_and_wait(popen, timeout):
    """SIGTERM and wait; SIGKILL when it has not exited after TIMEOUT seconds. True when it
    exited by itself (SIGKILLed: False)."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
            return False
    return True


def proc_fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value; returns it, or raises after timeout.

    A bounded wait for something that must eventually happen, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run(argv, timeout, input=None, check=True, env=None):
    """Runs a client process with a hard timeout (no test may hang)."""
    try:
        cp = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{argv[0]} timed out after {timeout}s; stderr:\n"
                             + (e.stderr or b"").decode("utf-8", "replace")[-4000:])
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {cp.returncode}; stderr:\n"
                             + cp.stderr.decode("utf-8", "replace")[-4000:])
    return cp


# ---------------------------------------------------------------------------------------------
# Ports


def _bindable(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _ephemeral_low():
    """The lowest port the kernel hands out to outgoing connections (ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ranges handed out in this test session: a later test's kgate may start before an earlier
# one's range is bound (or after it was, between two checks), so ranges are not reused soon.
_HANDED_OUT = []


def free_port_range(count, hosts=("127.0.0.1",)):
    """A base port such that base..base+count-1 can all be bound on every host. Ports come
    from below the kernel's ephemeral range: a port checked free there could otherwise be taken
    by any outgoing connection (a client's, a broker connection's, PostgreSQL's) before kgate
    binds it."""
    rng = random.Random()
    low, high = 10000, min(_ephemeral_low(), 65536)
    if high - low < count + 1000:  # an unusual ip_local_port_range: fall back to the old span
        low, high = 20000, 60000
    for _ in range(200):
        base = rng.randrange(low, high - count)
        if any(base < b + n and b < base + count for b, n in _HANDED_OUT):
            continue
        if all(_bindable(h, p) for h in hosts for p in range(base, base + count)):
            _HANDED_OUT.append((base, count))
            del _HANDED_OUT[:-40]
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def kgate_ports(vclusters, hosts=("127.0.0.1",)):
    """({vcluster: bootstrap port}, admin port) for a kgate serving VCLUSTERS, all free on every
    host: KGATE_PORTS consecutive ports per virtual cluster, then the admin port."""
    base = free_port_range(KGATE_PORTS * len(vclusters) + 1, hosts)
    ports = {vc: base + i * KGATE_PORTS for i, vc in enumerate(vclusters)}
    return ports, base + KGATE_PORTS * len(vclusters)


def wait_port_open(host, port, timeout, alive=lambda: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------
# The kgate binary under test


def _works(binary):
    try:
        return subprocess.run([binary, "version"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10).returncode == 0
    except OSError:
        return False


def use_private_kgate(directory, wait=120):
    """Copies KGATE_BIN into DIRECTORY (waiting up to WAIT seconds while a build replaces it) and
    makes the copy this module's KGATE_BIN, the binary every later DevCluster and KgateProcess
    runs: other work rebuilding build/kgate mid-run must not swap or remove it under a test.

    Modules that imported KGATE_BIN by name keep the original; read kghelpers.KGATE_BIN."""
    global KGATE_BIN
    deadline = time.monotonic() + wait
    while not _works(KGATE_BIN):
        if time.monotonic() > deadline:
            raise AssertionError(f"{KGATE_BIN} is not a working kgate (make build, or set KGATE_BIN)")
        time.sleep(1)
    copy = os.path.join(str(directory), "kgate")
    shutil.copy2(KGATE_BIN, copy)
    KGATE_BIN = copy
    return copy


# ---------------------------------------------------------------------------------------------
# Dev clusters (librdkafka's mock cluster)


class DevCluster:
    """A running dev cluster: .bootstrap "host:port,...", .hostports, .pid, .requested_version
    ("2.0.2" or "2.12"), .librdkafka_version (what it logged, None when nothing)."""

    def __init__(self, version, log_dir, topics, brokers=3, name="east", rebalance_delay_ms=None):
        """topics: ["name:partitions", ...]; rebalance_delay_ms: the mock's
        group.initial.rebalance.delay.ms (None: its default, 3000 ms)."""
        self.name = name
        self.requested_version = version
        self.brokers = brokers
        argv = devcluster_command(version) + ["--brokers", str(brokers)]
        if rebalance_delay_ms is not None:
            argv += ["--group-initial-rebalance-delay-ms", str(rebalance_delay_ms)]
        for t in topics:
            argv += ["--topic", t]
        self.proc = Proc(argv, os.path.join(str(log_dir), f"dev-cluster-{name}.stderr"))
        self.pid = self.proc.pid
        self.bootstrap = self.proc.read_stdout_line(timeout=20)
        self.hostports = parse_hostports(self.bootstrap)
        found = VERSION_RE.search(self.proc.stderr_text())
        self.librdkafka_version = found.group(1) if found else None

    def alive(self):
        return self.proc.alive()

    def stop(self):
        rc = self.proc.terminate()
        assert rc == 0, f"dev-cluster exit code {rc}; stderr:\n{self.proc.stderr_text()[-3000:]}"


# ---------------------------------------------------------------------------------------------
# kgate processes and their admin API


def kgate_config_yaml(clusters, vclusters, admin_port, state_path, listen="127.0.0.1",
                      advertised_host="127.0.0.1", admin_token=None, extra_lines=()):
    """A kgate config file. clusters: {name: bootstrap}; vclusters: [(name, port, primary,
    secondary or None)]; extra_lines: further top-level lines (health, workers, chaos, ...)."""
    lines = [f"listen: {listen}", f"advertised_host: {advertised_host}", "clusters:"]
    for name, bootstrap in clusters.items():
        lines.append(f'  {name}: {{ bootstrap: "{bootstrap}" }}')
    lines.append("vclusters:")
    for name, port, primary, secondary in vclusters:
        sec = f", secondary: {secondary}" if secondary else ""
        lines.append(f"  {name}: {{ port: {port}, primary: {primary}{sec} }}")
    admin = f"listen: 127.0.0.1:{admin_port}" + (f", token: {admin_token}" if admin_token else "")
    lines += [f"admin: {{ {admin} }}", f"state: {state_path}", *extra_lines]
    return "\n".join(lines) + "\n"


def start_kgate(binary, config_path, stderr_path, ports, timeout=20):
    """`BINARY serve -c CONFIG_PATH`, once it listens on every one of PORTS (on 127.0.0.1);
    a kgate that does not is stopped and reported with its log."""
    proc = Proc([binary, "serve", "-c", config_path], stderr_path, stdout=None)
    for port in ports:
        if not wait_port_open("127.0.0.1", port, timeout, alive=proc.alive):
            rc = proc.terminate()
            raise AssertionError(f"kgate did not open 127.0.0.1:{port} (exit {rc}); stderr:\n"
                                 + proc.stderr_text()[-4000:])
    return proc


def stop_kgate(proc):
    """SIGTERM; prints the log (pytest shows it for a failed test) and asserts a clean exit."""
    rc = proc.terminate()
    text = proc.stderr_text()
    print(f"---- kgate stderr (last 6000 chars), exit code {rc} ----\n{text[-6000:]}")
    assert rc == 0, f"kgate exited with {rc} after SIGTERM"


class HttpReply:
    def __init__(self, status, body, headers):
        self.status = status
        self.text = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"HTTP {self.status} {self.text[:500]}"


def admin_http(port, method, path, body=None, token=None, headers=None, timeout=30):
    """One request to the admin API on 127.0.0.1:PORT. body: dict (sent as JSON), str/bytes
    (sent as is) or None; token: sent as a Bearer Authorization header unless None."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return HttpReply(resp.status, resp.read().decode("utf-8", "replace"),
                         dict(resp.getheaders()))
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Fixture helpers


def stop_all(started):
    """Stops every one of STARTED (all of them, even when one fails), then fails with every
    error."""
    errors = []
    for s in started:
        try:
            s.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


def factory_in_subdirs(tmp_path, prefix, make):
    """Generator body of a factory fixture: yields start(**kwargs) -> make(subdir, **kwargs),
    each in its own subdirectory PREFIX<n> of tmp_path, and stops them all at teardown."""
    started = []

    def start(**kwargs):
        sub = tmp_path / f"{prefix}{len(started)}"
        sub.mkdir()
        obj = make(sub, **kwargs)
        started.append(obj)
        return obj

    yield start
    stop_all(started)


# ---------------------------------------------------------------------------------------------
# Raw Kafka frames (request header v1: api key, api version, correlation id, client id)


def encode_request(api_key, api_version, corr_id, body=b"", client_id="kgate-test",
                   flexible=False):
    """A request frame; flexible=True adds the (empty) tagged fields of request header v2."""
    cid = client_id.encode()
    payload = (struct.pack(">hhih", api_key, api_version, corr_id, len(cid)) + cid
               + (b"\x00" if flexible else b"") + body)
    return struct.pack(">i", len(payload)) + payload


def api_versions_v0(corr_id):
    return encode_request(18, 0, corr_id)


def metadata_v1_all_topics(corr_id):
    # topics: null array (-1) means "all topics" from v1 on.
    return encode_request(3, 1, corr_id, struct.pack(">i", -1))


def uvarint(n):
    """An unsigned varint (flexible versions: compact lengths, tagged fields)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_uvarint(buf, off):
    """(value, offset after it) of the unsigned varint at buf[off]."""
    shift = value = 0
    while True:
        b = buf[off]
        off += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, off
        shift += 7


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def round_trip(sock, frame):
    """Sends one request frame and returns the response frame (without the size prefix)."""
    sock.sendall(frame)
    resp = recv_frame(sock)
    (corr_sent,) = struct.unpack(">i", frame[8:12])
    (corr_got,) = struct.unpack(">i", resp[:4])
    if corr_sent != corr_got:
        raise AssertionError(f"correlation id {corr_got} in response to {corr_sent}")
    return resp


def parse_api_versions_v0(resp):
    """Returns (error_code, {api_key: (min, max)}) from an ApiVersions v0 response frame."""
    error, n = struct.unpack(">hi", resp[4:10])
    apis = {}
    off = 10
    for _ in range(n):
        key, vmin, vmax = struct.unpack(">hhh", resp[off:off + 6])
        apis[key] = (vmin, vmax)
        off += 6
    return error, apis


def wait_closed_by_peer(sock, timeout):
    """True when the peer closes (EOF or reset) within timeout; bytes the peer sends first are
    ignored (a broker may answer an error before closing)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


# ---------------------------------------------------------------------------------------------
# Names of API keys, from the Kafka message specs in the repository (protocol/messages).


def load_api_names():
    names = {}
    spec_dir = os.path.join(ROOT, "protocol", "messages")
    for fn in os.listdir(spec_dir) if os.path.isdir(spec_dir) else []:
        if not fn.endswith("Request.json"):
            continue
        with open(os.path.join(spec_dir, fn)) as f:
            # The specs carry // comment lines (license header), not valid JSON as-is.
            text = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("//"))
        spec = json.loads(text)
        names[spec["apiKey"]] = spec["name"][: -len("Request")]
    return names


# ---------------------------------------------------------------------------------------------
# Capturing relay: client -> relay -> upstream, recording every frame in both directions.

Exchange = collections.namedtuple("Exchange", "api_key api_version corr_id request response")


class _ConnCapture:
    def __init__(self, relay, listen_port):
        self.relay = relay
        self.listen_port = listen_port
        self.pending = collections.deque()  # (corr, key, ver, frame) awaiting a response

    def on_request(self, frame):
        if len(frame) < 8:
            self.relay.record_raw("req", frame)
            return
        key, ver, corr = struct.unpack(">hhi", frame[:8])
        self.pending.append((corr, key, ver, frame))

    def on_response(self, frame):
        """Records the exchange; returns the frame to pass on (see Relay.rewrite_response)."""
        corr = struct.unpack(">i", frame[:4])[0] if len(frame) >= 4 else None
        # Requests without a response (Produce acks=0) are skipped by matching correlation ids.
        while self.pending and self.pending[0][0] != corr:
            c, k, v, req = self.pending.popleft()
            self.relay.record(Exchange(k, v, c, req, None), self.listen_port)
        if self.pending:
            c, k, v, req = self.pending.popleft()
            self.relay.record(Exchange(k, v, c, req, frame), self.listen_port)
            if self.relay.rewrite_response:
                return self.relay.rewrite_response(k, v, frame)
        else:
            self.relay.record_raw("resp", frame)
        return frame


class _FrameSplitter:
    def __init__(self, on_frame):
        self.buf = bytearray()
        self.on_frame = on_frame

    def feed(self, data):
        self.buf += data
        while len(self.buf) >= 4:
            (size,) = struct.unpack(">i", self.buf[:4])
            if size < 0 or len(self.buf) < 4 + size:
                return
            frame = bytes(self.buf[4:4 + size])
            del self.buf[:4 + size]
            self.on_frame(frame)


class Relay:
    """Listens on (listen_host, port) for each port in `routes` and forwards to routes[port].

    Runs an asyncio loop in a thread. Every exchange is appended to self.exchanges as
    (listen_port, Exchange) with the bytes as the upstream sent them; unmatched frames go to
    self.raw. rewrite_response(api_key, api_version, frame) -> frame, when given, changes what
    the client receives (the recorded bytes stay the upstream's)."""

    def __init__(self, listen_host, routes, rewrite_response=None):
        self.listen_host = listen_host
        self.routes = dict(routes)
        self.rewrite_response = rewrite_response
        self.exchanges = []
        self.raw = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.servers = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._error = None

    def record(self, exchange, port):
        with self.lock:
            self.exchanges.append((port, exchange))

    def record_raw(self, direction, frame):
        with self.lock:
            self.raw.append((direction, frame))

    def snapshot(self):
        with self.lock:
            return list(self.exchanges), list(self.raw)

    def start(self):
        self.thread.start()
        self._started.wait(10)
        if self._error:
            raise self._error
        return self

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            for port, target in self.routes.items():
                srv = self.loop.run_until_complete(asyncio.start_server(
                    lambda r, w, p=port, t=target: self._handle(r, w, p, t),
                    self.listen_host, port))
                self.servers.append(srv)
        except Exception as e:  # reported to start()
            self._error = e
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    async def _pump(self, reader, writer, splitter):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _pump_responses(self, reader, writer, cap):
        """Upstream to client, frame by frame, so a response can be rewritten."""
        out = []
        splitter = _FrameSplitter(lambda f: out.append(cap.on_response(f)))
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                for frame in out:
                    writer.write(struct.pack(">i", len(frame)) + frame)
                out.clear()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _handle(self, client_r, client_w, port, target):
        try:
            up_r, up_w = await asyncio.open_connection(target[0], target[1])
        except OSError:
            client_w.close()
            return
        cap = _ConnCapture(self, port)
        await asyncio.gather(
            self._pump(client_r, up_w, _FrameSplitter(cap.on_request)),
            self._pump_responses(up_r, client_w, cap))

    async def _shutdown(self):
        for srv in self.servers:
            srv.close()
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


# ---------------------------------------------------------------------------------------------
# Backend address detection in response frames


def backend_address_hits(frame, backend_hostports):
    """Ways a response frame reveals a backend broker: its "host:port" text, or its host string
    immediately followed by its port as a big-endian int32 (how every broker entry is encoded:
    Metadata, FindCoordinator, DescribeCluster, NodeEndpoints; classic or compact strings)."""
    hits = []
    for host, port in backend_hostports:
        text = f"{host}:{port}".encode()
        if text in frame:
            hits.append(f"text {text.decode()}")
        if host.encode() + struct.pack(">i", port) in frame:
            hits.append(f"broker entry {host}/{port}")
    return hits


def parse_hostports(bootstrap):
    out = []
    for hp in bootstrap.split(","):
        host, port = hp.rsplit(":", 1)
        out.append((host, int(port)))
    return out


VERSION_RE = re.compile(r"librdkafka (\d+\.\d+\.\d+)")
