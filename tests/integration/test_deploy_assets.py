"""deploy/grafana/kgate-dashboard.json and deploy/prometheus/kgate-alerts.yml against a running
kgate: both files parse, and every metric name their PromQL expressions use is one kgate
exports on /metrics.

The kgate serves two virtual clusters on two dev clusters: "default" (plain) gets traffic, a
chaos rule and a failover; "secure" has a TLS listener, SASL and ACLs, so the metrics those
features register exist too. A name that only appears after some event (an API's request
counter, a rule's injection counter) is made to appear by causing the event, never assumed."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "security"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "failover"))

import kghelpers  # noqa: E402
from fohelpers import DevCluster, parse_prometheus  # noqa: E402
from kghelpers import ROOT, admin_http, kgate_ports, start_kgate, stop_kgate, wait_for  # noqa: E402

DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "kgate-dashboard.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "kgate-alerts.yml")

# Words of PromQL that are not metric names: functions, aggregations, operators, modifiers.
PROMQL_WORDS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta", "deriv",
    "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log2", "log10", "max_over_time",
    "min_over_time", "minute", "month", "predict_linear", "quantile_over_time", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time",
    "timestamp", "vector", "year", "sum", "min", "max", "avg", "count", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "group", "and", "or", "unless", "by",
    "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "inf", "nan",
    "label_values",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr):
    """The metric names EXPR uses: what is left of its identifiers once strings, label
    matchers, ranges, grouping label lists, Grafana variables, numbers and PromQL's own words
    are taken out."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    # label_values(metric, label): the label is not a metric
    e = re.sub(r"label_values\(([^,()]*),[^)]*\)", r"(\1)", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)", e):
        word = m.group(1)
        if word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def base_name(name, exported):
    """NAME, or the histogram it is a series of (name_bucket -> name) when kgate exports that."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name


def dashboard_exprs(dash):
    """Every PromQL expression of the dashboard: panel targets (rows' nested panels too),
    template variable queries and annotations."""
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend((p.get("title", "?"), t["expr"]) for t in p.get("targets", [])
                         if t.get("expr"))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            exprs.append((f"variable {v['name']}", q["query"] if isinstance(q, dict) else q))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            exprs.append((f"annotation {a['name']}", a["expr"]))
    return exprs


def alert_exprs(rules_doc):
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in rules_doc["groups"] for r in g["rules"]]


def test_expression_parser_finds_metric_names():
    """The check below is only as good as metric_names: it must find names wherever they sit."""
    assert metric_names('sum by (vcluster, api) (rate(kgate_requests_total{vcluster=~"$vc"}'
                        '[$__rate_interval]))') == {"kgate_requests_total"}
    assert metric_names("(kgate_cluster_up == 0) and on (cluster) (kgate_vcluster_active == 1)"
                        ) == {"kgate_cluster_up", "kgate_vcluster_active"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))"
                        ) == {"x_seconds_bucket"}
    assert metric_names("label_values(kgate_vcluster_epoch, vcluster)") == {"kgate_vcluster_epoch"}
    assert metric_names("absent(kgate_cluster_up)") == {"kgate_cluster_up"}
    assert metric_names("kgate_nope > 1e3") == {"kgate_nope"}
    assert base_name("x_seconds_bucket", {"x_seconds"}) == "x_seconds"
    assert base_name("y_count", {"x_seconds"}) == "y_count"


def test_assets_parse():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["panels"] and dashboard_exprs(dash)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    with open(ALERTS) as f:
        rules = yaml.safe_load(f)
    names = [name for name, _ in alert_exprs(rules)]
    assert names and len(names) == len(set(names))
    for g in rules["groups"]:
        for r in g["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            assert r["labels"]["severity"] in ("info", "warning", "critical"), r
            assert r["annotations"]["summary"], r


def kgate_config(work, clusters, ports, admin_port, pki):
    lines = ["listen: 127.0.0.1", "advertised_host: 127.0.0.1", "clusters:"]
    for name, dc in clusters.items():
        lines.append(f'  {name}: {{ bootstrap: "{dc.bootstrap}" }}')
    lines += ["vclusters:",
              "  default:", f"    port: {ports['default']}", "    primary: east",
              "    secondary: west",
              "  secure:", f"    port: {ports['secure']}", "    primary: east",
              "    secondary: west", "    auth: gateway", "    acls: enabled", "    listener:",
              "      sasl: [PLAIN]", "      tls:", f"        cert_file: {pki.server[0]}",
              f"        key_file: {pki.server[1]}",
              f"admin: {{ listen: 127.0.0.1:{admin_port} }}",
              f"state: {os.path.join(str(work), 'state.db')}",
              "health: { probe_interval_ms: 200 }"]
    path = os.path.join(str(work), "kgate.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def exported(tmp_path):
    """The metric names a kgate exports once it has seen traffic, a chaos rule and a failover."""
    from confluent_kafka import Producer
    from tlsgate import Pki

    pki = Pki(tmp_path)
    clusters = {n: DevCluster(n, "2.0.2", {"t1": 2}, tmp_path) for n in ("east", "west")}
    ports, admin_port = kgate_ports(["default", "secure"])
    config = kgate_config(tmp_path, clusters, ports, admin_port, pki)
    proc = start_kgate(kghelpers.KGATE_BIN, config, os.path.join(tmp_path, "kgate.stderr"),
                       [ports["default"], ports["secure"], admin_port])
    try:
        def admin(method, path, body=None):
            r = admin_http(admin_port, method, path, body)
            assert r.status < 300, f"{method} {path}: {r.status} {r.text}"
            return r

        wait_for(lambda: all(c["last_probe_unix_ms"] > 0
                             for c in admin("GET", "/v1/status").json["clusters"]),
                 60, what="kgate's first probe of both clusters")
        p = Producer({"bootstrap.servers": f"127.0.0.1:{ports['default']}",
                      "broker.address.family": "v4", "log_level": 3})
        for i in range(20):
            p.produce("t1", value=f"m{i}".encode())
        assert p.flush(60) == 0, "messages still queued after 60s"

        def scrape():
            return {n for n, _, _ in parse_prometheus(admin("GET", "/metrics").text)}

        # A Produce response held by a chaos rule when the client goes away: the chaos counters
        # and the unanswered-request counter appear (at a switch kgate answers what the old side
        # holds, so a switch no longer leaves it unanswered). Then a switch, for its metrics.
        rule = admin("POST", "/v1/chaos/rules",
                     {"type": "latency", "topic": "t1", "delay_ms": 600000, "on": "response"}).json
        p.produce("t1", value=b"held")
        p.poll(0)
        wait_for(lambda: any(n == "kgate_chaos_injected_total" and v >= 1
                             for n, _, v in parse_prometheus(admin("GET", "/metrics").text)),
                 60, what="the chaos rule to hold the Produce response")
        p.purge()
        p.flush(0)
        del p  # closes its connections with the Produce still in flight
        wait_for(lambda: "kgate_request_errors_total" in scrape(), 60,
                 what="the held Produce to be counted unanswered")
        admin("DELETE", f"/v1/chaos/rules/{rule['id']}")
        admin("POST", "/v1/vclusters/default/failover", {"reason": "test_deploy_assets"})
        text = admin("GET", "/metrics").text
    finally:
        stop_kgate(proc)
        for dc in clusters.values():
            dc.stop()
    names = {n for n, _, _ in parse_prometheus(text)}
    names |= set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    return names


def test_every_metric_of_the_dashboard_and_alerts_is_exported(exported):
    with open(DASHBOARD) as f:
        exprs = [("dashboard: " + w, e) for w, e in dashboard_exprs(json.load(f))]
    with open(ALERTS) as f:
        exprs += [("alert " + w, e) for w, e in alert_exprs(yaml.safe_load(f))]
    used, unknown = set(), []
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        for n in names:
            used.add(base_name(n, exported))
            if base_name(n, exported) not in exported:
                unknown.append(f"{where}: {n}")
    assert not unknown, "names kgate does not export:\n" + "\n".join(unknown)
    # The dashboard and alerts cover what the operator needs from every feature.
    for needed in ("kgate_vcluster_active", "kgate_cluster_up", "kgate_parity_differences",
                   "kgate_cluster_auth_failed", "kgate_tls_handshakes_total",
                   "kgate_chaos_rules", "kgate_acl_denials_total", "kgate_requests_total"):
        assert needed in used, f"{needed} is in neither the dashboard nor the alerts"


# ---------------------------------------------------------------------------------------------
# bash completion and man page, both checked against what `kgate --help` prints

COMPLETION = os.path.join(ROOT, "deploy", "kgate.bash-completion")
GEN_MAN = os.path.join(ROOT, "scripts", "gen-man")


def help_text():
    return subprocess.run([kghelpers.KGATE_BIN, "--help"], stdout=subprocess.PIPE, check=True,
                          text=True, timeout=30).stdout


def help_commands():
    """{command: {options}} from --help: entries indented by two spaces start a command, the
    lines below them (more indented) belong to it; "common options" go to the operation
    commands, "Options for serve/check" to serve and check."""
    commands, current, section = {}, None, ""
    for line in help_text().splitlines():
        if line and not line.startswith(" "):
            section = line
            current = None
            if line.startswith("Options for serve/check:"):
                for c in ("serve", "check"):
                    commands[c] |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", line))
            continue
        m = re.match(r"  ([a-z][a-z-]*)\b", line)
        if m and m.group(1) != "common":
            current = m.group(1)
            commands.setdefault(current, set())
        elif m:  # common options: of every command of the Operations section
            current = "common"
            commands["common"] = set()
        if current:
            commands[current] |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", line))
        if current and section.startswith("Operations"):
            commands.setdefault("_operations", set()).add(current)
    common = commands.pop("common")
    for c in commands.pop("_operations") - {"common"}:
        commands[c] |= common
    return commands


def complete(line):
    """What the completion offers for LINE (the cursor at its end), by calling _kgate the way
    bash does on <TAB>."""
    words = line.split(" ")
    script = (f"source {shlex.quote(COMPLETION)}\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={shlex.quote(line)}\n"
              f"COMP_POINT={len(line)}\n"
              f"[ \"$(complete -p kgate)\" = 'complete -F _kgate kgate' ] || exit 9\n"
              "_kgate\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    cp = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=30)
    assert cp.returncode == 0 and not cp.stderr, f"{line!r}: rc {cp.returncode} {cp.stderr}"
    return set(cp.stdout.split())


def test_completion_of_prefixes():
    assert complete("kgate fa") == {"failover", "failback"}
    assert complete("kgate chaos ") == {"add", "list", "rm"}
    assert complete("kgate chaos add la") == {"latency"}
    assert complete("kgate experiment r") == {"run", "report"}
    assert complete("kgate token add ops --role ") == {"viewer", "operator", "admin"}
    assert complete("kgate serve --log-level w") == {"warn"}
    assert complete("kgate failover default --r") == {"--reason"}
    assert complete("kgate failover default --reason ") == set()  # free text: nothing offered
    assert complete("kgate zz") == set()


def test_completion_knows_every_command_and_option_of_help():
    commands = help_commands()
    assert {"serve", "failover", "chaos", "acl", "dev-cluster"} <= set(commands), commands
    offered = complete("kgate ")
    assert set(commands) <= offered, f"commands --help has, completion lacks: " \
                                     f"{set(commands) - offered}"
    for cmd, options in commands.items():
        missing = options - complete(f"kgate {cmd} -")
        assert not missing, f"kgate {cmd}: options of --help completion lacks: {missing}"


def test_man_page_renders_without_warnings_and_has_every_command(tmp_path):
    page = os.path.join(str(tmp_path), "kgate.1")
    with open(page, "w") as f:
        subprocess.run([GEN_MAN, kghelpers.KGATE_BIN], stdout=f, check=True, timeout=60)
    if shutil.which("man"):
        argv = ["man", "--warnings=all", "-l", page]
    else:
        argv = ["groff", "-man", "-Tutf8", "-ww", "-P-cbou", page]  # plain text out
    env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="100", LC_ALL="C.UTF-8")
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        timeout=60, env=env)
    assert cp.returncode == 0 and cp.stderr == "", f"{argv}: rc {cp.returncode}\n{cp.stderr}"
    text = re.sub(r".\x08", "", cp.stdout)  # overstrike bold, if any
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "FILES", "SEE ALSO"):
        assert re.search(rf"^{heading}$", text, re.M), f"no {heading} section:\n{text}"
    first_words = set(re.findall(r"^ {7}([a-z][a-z-]*)", text, re.M))
    missing = set(help_commands()) - first_words
    assert not missing, f"commands of --help missing from the man page: {missing}\n{text}"
    for line in help_text().splitlines()[3:]:  # every line of --help is in the page, reflowed
        words = line.rstrip(":").split()  # section titles lose their colon
        if words:
            assert " ".join(words) in " ".join(text.split()), f"{line!r} not in the page"
