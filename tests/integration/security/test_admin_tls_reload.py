"""The admin API's HTTPS certificate is reloaded without a restart (issue 8, item 1): SIGHUP and
`kgate reload` re-read admin.tls.cert_file and key_file; a Python TLS client then sees the new
certificate's serial. A broken file is refused with the reason and the old certificate stays."""

import os
import signal

from cryptography import x509

import kghelpers
from kghelpers import kgate_config_yaml, kgate_ports, start_kgate, stop_kgate, wait_for
from tlsgate import Pki, peer_certificate


def serial_of_file(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).serial_number


def served_serial(port, ca):
    return x509.load_der_x509_certificate(peer_certificate("127.0.0.1", port, ca)).serial_number


def test_admin_certificate_reload(cluster, tmp_path):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = Pki(pki_dir)
    cert, key = pki.server
    ports, admin_port = kgate_ports(["default"])
    config = tmp_path / "kgate.yaml"
    config.write_text(kgate_config_yaml(
        {"east": cluster.bootstrap}, [("default", ports["default"], "east", None)], admin_port,
        str(tmp_path / "state.db")).replace(
            f"admin: {{ listen: 127.0.0.1:{admin_port} }}",
            f"admin: {{ listen: 127.0.0.1:{admin_port}, tls: {{ cert_file: {cert}, "
            f"key_file: {key}, ca_file: {pki.ca.pem} }} }}"))
    proc = start_kgate(kghelpers.KGATE_BIN, str(config), str(tmp_path / "kgate.stderr"),
                       [ports["default"], admin_port])
    try:
        first = serial_of_file(cert)
        assert served_serial(admin_port, pki.ca.pem) == first

        # SIGHUP: the renewed files are served to new connections.
        pki.renew_server()
        second = serial_of_file(cert)
        assert second != first
        proc.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: served_serial(admin_port, pki.ca.pem) == second, 30,
                 what="the renewed certificate after SIGHUP")

        # kgate reload (the API, over the HTTPS it reloads).
        pki.renew_server()
        third = serial_of_file(cert)
        cli = [kghelpers.KGATE_BIN, "reload", "-c", str(config)]
        kghelpers.run(cli, timeout=60)
        assert served_serial(admin_port, pki.ca.pem) == third

        # A key that is not the certificate's: refused with the reason, the old one stays.
        with open(pki.bob[1], "rb") as f:
            other_key = f.read()
        with open(key, "wb") as f:
            f.write(other_key)
        bad = kghelpers.run(cli, timeout=60, check=False)
        assert bad.returncode == 1, bad
        why = bad.stderr.decode()
        assert "admin" in why and "key" in why, why
        print("refused:", why)
        assert served_serial(admin_port, pki.ca.pem) == third

        # A certificate file that is not PEM, by SIGHUP: logged, the old certificate stays.
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        proc.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP" in proc.stderr_text() and "not reloaded" in proc.stderr_text(),
                 30, what="the refused reload in the log")
        assert "admin API: admin.tls" in proc.stderr_text()
        assert served_serial(admin_port, pki.ca.pem) == third
    finally:
        stop_kgate(proc)
    assert os.path.exists(str(tmp_path / "state.db"))
