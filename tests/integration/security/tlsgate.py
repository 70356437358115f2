"""TLS for the security tests: a PKI made at test time (OpenSSL, through python3-cryptography),
kgates with a TLS listener or with TLS and SASL towards their clusters, and HAProxy as an
independent TLS terminator in front of a kgate.

Topology of the upstream tests (kgate B stands in for a secured cluster: the mock cluster knows
neither TLS nor SASL):

    client -> kgate A --TLS(+mTLS)+SASL--> HAProxy 127.0.0.2:P.. --plain--> kgate B 127.0.0.1:P..
                                                                              (auth: gateway)
                                                                                 -> mock cluster
B advertises 127.0.0.2 and its own port numbers, which are HAProxy's: every broker connection
A opens goes through the terminator, as it would to a TLS listener of a real cluster."""

import datetime
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import kghelpers
from kghelpers import Proc, admin_http, kgate_ports, start_kgate, stop_kgate, wait_port_open

# ---------------------------------------------------------------------------------------------
# PKI

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn, ou=None, o="acme"):
    """O, OU, CN in that order, as CAs issue them: "CN=cn,OU=ou,O=o" in RFC 2253 (reversed)."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


class Authority:
    """A CA that issues certificates into DIRECTORY: .pem (its certificate), .issue(...)."""

    def __init__(self, directory, cn):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - datetime.timedelta(days=1))
                     .not_valid_after(NOW + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = _write(os.path.join(directory, f"{cn}.pem"),
                          self.cert.public_bytes(serialization.Encoding.PEM))
        self.revoked = []

    def issue(self, file_stem, subject, dns=(), ips=(), expired=False):
        """(cert_path, key_path) for SUBJECT (an x509.Name)."""
        import ipaddress
        key = ec.generate_private_key(ec.SECP256R1())
        start = NOW - datetime.timedelta(days=10 if expired else 1)
        end = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=30)
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end))
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                 for i in ips]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path = _write(os.path.join(self.dir, f"{file_stem}.pem"),
                           cert.public_bytes(serialization.Encoding.PEM))
        key_path = _write(os.path.join(self.dir, f"{file_stem}.key"), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.last_serial = cert.serial_number
        return cert_path, key_path

    def crl(self, serials):
        """A CRL revoking SERIALS; returns its path."""
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.name)
             .last_update(NOW - datetime.timedelta(hours=1))
             .next_update(NOW + datetime.timedelta(days=7)))
        for s in serials:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                          .revocation_date(NOW - datetime.timedelta(hours=1))
                                          .build())
        crl = b.sign(self.key, hashes.SHA256())
        return _write(os.path.join(self.dir, "revoked.crl.pem"),
                      crl.public_bytes(serialization.Encoding.PEM))


class Pki:
    """Everything the TLS tests use, made once per test in DIRECTORY."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.ca = Authority(self.dir, "kgate-test-ca")
        self.other_ca = Authority(self.dir, "some-other-ca")
        self.server = self.ca.issue("gateway", _name("kgate.test"), dns=["localhost"],
                                    ips=["127.0.0.1", "127.0.0.2"])
        self.server_ip2_only = self.ca.issue("ip2only", _name("kgate.test"), ips=["127.0.0.2"])
        self.alice = self.ca.issue("alice", _name("alice", ou="eng"))
        self.bob = self.ca.issue("bob", _name("bob", ou="ops"))
        self.expired = self.ca.issue("expired", _name("old", ou="eng"), expired=True)
        self.carol = self.ca.issue("carol", _name("carol", ou="eng"))
        self.crl = self.ca.crl([self.ca.last_serial])
        self.stranger = self.other_ca.issue("stranger", _name("mallory", ou="eng"))

    def renew_server(self):
        """New certificate and key in the server's files (what an operator's renewal does)."""
        self.ca.issue("gateway", _name("kgate.test", ou="renewed"), dns=["localhost"],
                      ips=["127.0.0.1", "127.0.0.2"])

    def combined(self, cert_key, stem):
        """CERT and KEY in one PEM file (HAProxy's `crt`)."""
        cert, key = cert_key
        with open(cert, "rb") as c, open(key, "rb") as k:
            return _write(os.path.join(self.dir, f"{stem}.combined.pem"), c.read() + k.read())


def peer_certificate(host, port, ca, client=None):
    """The DER certificate a TLS server on HOST:PORT presents (verified against CA)."""
    import socket
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    if client:
        ctx.load_cert_chain(*client)
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


def librdkafka_ssl(pki, client=None):
    conf = {"security.protocol": "SSL", "ssl.ca.location": pki.ca.pem}
    if client:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = client
    return conf


def kcat_ssl_args(pki, client=None):
    return [a for k, v in librdkafka_ssl(pki, client).items() for a in ("-X", f"{k}={v}")]


# ---------------------------------------------------------------------------------------------
# kgates


class Gate:
    """A kgate from a config body (YAML lines after the top-level keys kgate_ports decides).

    .base (the vcluster's port), .tls_base (listener.tls.port when asked for), .admin_port"""

    def __init__(self, work, clusters_yaml, vcluster_yaml, tls_port=False, hosts=("127.0.0.1",),
                 advertised="127.0.0.1", extra=()):
        names = ["plain", "tls"] if tls_port else ["plain"]
        ports, self.admin_port = kgate_ports(names, hosts)
        self.base = ports["plain"]
        self.tls_base = ports.get("tls")
        self.config_path = os.path.join(str(work), "kgate.yaml")
        stderr = os.path.join(str(work), "kgate.stderr")
        body = ["listen: 127.0.0.1", f"advertised_host: {advertised}", "clusters:",
                *[f"  {line}" for line in clusters_yaml], "vclusters:", "  default:",
                f"    port: {self.base}",
                *[f"    {line.format(tls_port=self.tls_base)}" for line in vcluster_yaml],
                f"admin: {{ listen: 127.0.0.1:{self.admin_port} }}",
                f"state: {os.path.join(str(work), 'kgate-state.db')}",
                "health: { probe_interval_ms: 200 }", *extra]
        with open(self.config_path, "w") as f:
            f.write("\n".join(body) + "\n")
        self.proc = start_kgate(kghelpers.KGATE_BIN, self.config_path, stderr,
                                [self.tls_base or self.base, self.admin_port])

    def stop(self):
        stop_kgate(self.proc)

    def log(self):
        return self.proc.stderr_text()

    def admin(self, method, path, body=None):
        return admin_http(self.admin_port, method, path, body)

    def metric(self, name, **labels):
        text = self.admin("GET", "/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            got = ",".join(sorted(head[len(name) + 1:-1].split(","))) if "{" in head else ""
            if got == want:
                return float(value)
        return 0.0

    def cluster_status(self, name):
        status = self.admin("GET", "/v1/status").json
        return next(c for c in status["clusters"] if c["name"] == name)

    def audit(self, type_):
        entries = self.admin("GET", "/v1/audit?limit=1000").json
        entries = entries["entries"] if isinstance(entries, dict) else entries
        return [e for e in entries if e["type"] == type_]

    def users_add(self, name, mechanism, password):
        kghelpers.run([kghelpers.KGATE_BIN, "users", "add", name, "--mechanism", mechanism,
                       "--password-stdin", "--admin", f"127.0.0.1:{self.admin_port}"],
                      timeout=60, input=(password + "\n").encode())


def listener_tls_yaml(pki, client_auth="none", second_port=False, crl=False, mapping=None):
    lines = ["listener:", "  tls:", f"    cert_file: {pki.server[0]}",
             f"    key_file: {pki.server[1]}", f"    client_auth: {client_auth}"]
    if client_auth != "none":
        lines.append(f"    client_ca_file: {pki.ca.pem}")
    if crl:
        lines.append(f"    crl_file: {pki.crl}")
    if second_port:
        lines.append("    port: {tls_port}")
    if mapping:
        lines.append("    principal_mapping: [" + ", ".join(f"'{m}'" for m in mapping) + "]")
    return lines


class Terminator:
    """HAProxy terminating TLS on HOST:PORTS, forwarding each port to 127.0.0.1 on the same
    port. CLIENT_CA: require client certificates signed by it (mTLS)."""

    def __init__(self, work, host, ports, crt, client_ca=None):
        cfg = os.path.join(str(work), "haproxy.cfg")
        verify = f" verify required ca-file {client_ca}" if client_ca else ""
        lines = ["global", "  maxconn 1000", "defaults", "  mode tcp", "  timeout connect 5s",
                 "  timeout client 60s", "  timeout server 60s"]
        for p in ports:
            lines += [f"listen tls{p}", f"  bind {host}:{p} ssl crt {crt}{verify}",
                      f"  server b 127.0.0.1:{p}"]
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = Proc(["haproxy", "-f", cfg, "-db"], os.path.join(str(work), "haproxy.log"),
                         stdout=None)
        for p in ports:
            assert wait_port_open(host, p, 10, alive=self.proc.alive), self.proc.stderr_text()

    def stop(self):
        self.proc.terminate()
