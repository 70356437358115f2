"""`make deb` (scripts/build-deb): the Debian package holds the binary, the man page, the systemd
unit, the example config as a conffile, the bash completion and the docs; its control scripts
create the kgate system user; its Depends name the libraries the binary links. Built from the
binary under test, inspected with dpkg-deb, the extracted kgate run; as root (CI) the package is
also installed with dpkg -i and purged."""

import grp
import gzip
import os
import pwd
import shutil
import subprocess

import pytest

import kghelpers

ROOT = os.path.dirname(os.path.dirname(kghelpers.INTEGRATION_DIR))


def sh(*argv, check=True):
    cp = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        timeout=300)
    assert not check or cp.returncode == 0, f"{argv}: exit {cp.returncode}\n{cp.stdout}{cp.stderr}"
    return cp


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    man = out / "kgate.1"
    man.write_text(sh(os.path.join(ROOT, "scripts", "gen-man"), kghelpers.KGATE_BIN).stdout)
    path = sh(os.path.join(ROOT, "scripts", "build-deb"), kghelpers.KGATE_BIN, str(man),
              str(out)).stdout.strip()
    assert os.path.isfile(path), path
    return path


def kgate_version():
    return sh(kghelpers.KGATE_BIN, "version").stdout.split()[1]


def test_control_fields_conffiles_and_scripts(deb, tmp_path):
    field = lambda name: sh("dpkg-deb", "-f", deb, name).stdout.strip()  # noqa: E731
    assert field("Package") == "kgate"
    assert field("Version") == kgate_version()
    assert field("Architecture") == sh("dpkg", "--print-architecture").stdout.strip()
    depends = [d.split()[0] for d in field("Depends").split(", ")]
    for lib in ("libmicrohttpd12", "libjansson4", "libfyaml0", "librdkafka1", "libpq5", "passwd"):
        assert lib in depends, depends
    for pkg in depends:  # every dependency exists (here: is installed, the binary runs)
        assert sh("dpkg-query", "-W", pkg, check=False).returncode == 0, pkg
    ctrl = tmp_path / "DEBIAN"
    sh("dpkg-deb", "-e", deb, str(ctrl))
    assert (ctrl / "conffiles").read_text().split() == ["/etc/kgate/kgate.yaml"]
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(ctrl / script, os.X_OK), script
        sh("sh", "-n", str(ctrl / script))
    postinst = (ctrl / "postinst").read_text()
    assert "useradd --system" in postinst and "groupadd --system kgate" in postinst


def test_contents_and_extracted_binary_runs(deb, tmp_path):
    listing = sh("dpkg-deb", "--contents", deb).stdout.splitlines()
    entries = {line.split()[-1].lstrip("."): line.split()[0] for line in listing}
    for path in ("/usr/bin/kgate", "/usr/share/man/man1/kgate.1.gz",
                 "/lib/systemd/system/kgate.service", "/etc/kgate/kgate.yaml",
                 "/usr/share/bash-completion/completions/kgate",
                 "/usr/share/doc/kgate/copyright", "/usr/share/doc/kgate/console.md"):
        assert path in entries, (path, sorted(entries))
    assert entries["/usr/bin/kgate"] == "-rwxr-xr-x"
    assert entries["/etc/kgate/kgate.yaml"] == "-rw-r-----"  # holds the admin token
    assert all(" root/root " in line for line in listing)

    root = tmp_path / "root"
    sh("dpkg-deb", "-x", deb, str(root))
    kgate = str(root / "usr" / "bin" / "kgate")
    assert sh(kgate, "version").stdout.strip() == f"kgate {kgate_version()}"
    assert "ok (2 clusters, 1 virtual cluster)" in sh(
        kgate, "check", "-c", str(root / "etc" / "kgate" / "kgate.yaml")).stdout
    with gzip.open(root / "usr" / "share" / "man" / "man1" / "kgate.1.gz", "rt") as f:
        assert f.read().startswith(".TH KGATE 1")
    with open(os.path.join(ROOT, "deploy", "kgate.service")) as f:
        assert (root / "lib" / "systemd" / "system" / "kgate.service").read_text() == f.read()
    if shutil.which("lintian"):
        cp = sh("lintian", "--no-tag-display-limit", deb, check=False)
        errors = [l for l in cp.stdout.splitlines() if l.startswith("E:")]
        print(cp.stdout)
        assert not errors, errors


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_dpkg_install_creates_the_user_then_purge(deb):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root (CI runs as root)")
    if sh("dpkg-query", "-W", "kgate", check=False).returncode == 0:
        pytest.fail("a kgate package is installed already: this test would replace it")
    had_user = user_exists("kgate")
    try:
        sh("dpkg", "-i", deb)
        user = pwd.getpwnam("kgate")
        assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin", user
        st = os.stat("/etc/kgate/kgate.yaml")
        assert grp.getgrgid(st.st_gid).gr_name == "kgate" and st.st_mode & 0o777 == 0o640
        assert sh("/usr/bin/kgate", "version").stdout.strip() == f"kgate {kgate_version()}"
        status = sh("dpkg-query", "-W", "-f=${Status}", "kgate").stdout
        assert status == "install ok installed", status
    finally:
        sh("dpkg", "--purge", "kgate", check=False)
        if not had_user and user_exists("kgate"):
            sh("userdel", "kgate", check=False)
            sh("groupdel", "kgate", check=False)
    assert not os.path.exists("/usr/bin/kgate")
    assert not os.path.exists("/etc/kgate/kgate.yaml")  # purge removes the conffile
