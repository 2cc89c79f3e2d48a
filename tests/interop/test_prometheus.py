"""The observability files in packaging/ against real components: Debian's
Prometheus scrapes a hub running the repository's fixture server, through the
packaged scrape job (the token-free metricsListen address) and through its
documented token variant, with the packaged alerting rules loaded. The Python
SDK client makes a known number of tool calls over both 2025 transports, the
fixture crashes once, the hub restarts it; then Prometheus's HTTP API must
report exactly those calls, one restart, and the upstream going 1 -> 0 -> 1.
promtool checks the rules (and unit-tests each alert) and lints a scrape;
every PromQL expression of the Grafana dashboard runs against this Prometheus
and returns data.

The Alloy file and the dashboard's logs panel are checked in test_alloy.py."""

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from mcp.shared.exceptions import MCPError

from conftest import ROOT, TOKEN, Hub, Proc, free_port
from test_python_sdk import connect, run, text_of

PACKAGING = ROOT / "packaging"
RULES = PACKAGING / "prometheus" / "mcp-hub.rules.yml"
RULES_TEST = PACKAGING / "prometheus" / "mcp-hub.rules.test.yml"
SCRAPE = PACKAGING / "prometheus" / "scrape.yml"
DASHBOARD = PACKAGING / "grafana" / "mcp-hub.json"
FIXTURE = str(ROOT / "target" / "debug" / "mcp-fixture")

SERVER = "fx"
METRICS_TOKEN = "metrics-token"
# Short enough that the second or so the child is down (the first restart
# waits out a 1 s backoff) is seen by several scrapes.
SCRAPE_INTERVAL = "250ms"
# What the dashboard's Grafana variables become in the test.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "10m", "$server": SERVER}


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (scripts/test installs Debian's prometheus package, which ships it)")
    return found


# --- Prometheus ---------------------------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, config: str, tmp):
        (tmp / "prometheus.yml").write_text(config)
        check = subprocess.run([tool("promtool"), "check", "config", str(tmp / "prometheus.yml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"generated config refused:\n{config}\n{check.stdout}{check.stderr}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = Proc("prometheus", [tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                                        f"--storage.tsdb.path={tmp / 'data'}",
                                        f"--web.listen-address=127.0.0.1:{self.port}"], self.port, tmp)
        # The port opens before the storage is up; until then the API answers 503.
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.time() > deadline:
                self.proc.stop()
                raise AssertionError(f"Prometheus not ready: {self.proc.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def api(self, path: str, **params):
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                raise AssertionError(f"Prometheus answered {e.code} to {path} {params}: {raw[:200]!r}")
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str):
        return self.api("query", query=expr)["result"]

    def scalar(self, expr: str):
        """The value of an expression that yields at most one series (None when none)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def settle(self, expr: str, want: float, timeout: float = 20):
        """Polls until `expr` equals `want` (scrapes land every SCRAPE_INTERVAL); returns the last value."""
        deadline = time.time() + timeout
        while True:
            got = self.scalar(expr)
            if got == want or time.time() > deadline:
                return got
            time.sleep(0.25)

    def scraped_after(self, t: float, timeout: float = 20):
        """Waits until both jobs have scraped the hub after time `t`, so what happened before is in Prometheus."""
        deadline = time.time() + timeout
        while True:
            got = self.scalar('min(timestamp(up{job=~"mcp-hub|mcp-hub-token"}))')
            if (got or 0) > t and len(self.query('up{job=~"mcp-hub|mcp-hub-token"} == 1')) == 2:
                return
            assert time.time() < deadline, f"no scrape of both jobs since {t}: last at {got}"
            time.sleep(0.1)

    def stop(self):
        self.proc.stop()


def token_job(hub_address: str, token_file) -> str:
    """The token variant documented (commented out) in scrape.yml, uncommented, renamed and pointed at the hub."""
    lines = SCRAPE.read_text().splitlines()
    start = lines.index("#  - job_name: mcp-hub")
    job = [line[1:] for line in lines[start:] if line.startswith("#  ")]
    text = "\n".join(job) + "\n"
    for old, new in [("job_name: mcp-hub", "job_name: mcp-hub-token"),
                     ("/etc/prometheus/mcp-hub.token", str(token_file)),
                     ('"linuxserver.lan:9090"', f'"{hub_address}"'),
                     ("scrape_interval: 15s", f"scrape_interval: {SCRAPE_INTERVAL}")]:
        assert text.count(old) == 1, f"the token variant in scrape.yml no longer has {old!r}; update this test"
        text = text.replace(old, new)
    return text


def render_config(metrics_address: str, hub_address: str, token_file) -> str:
    """The packaged scrape job with only its target and interval changed, the token variant, the packaged rules."""
    scrape = SCRAPE.read_text()
    job = '    scrape_interval: 15s\n    static_configs:\n      - targets: ["127.0.0.1:9091"]\n'
    assert scrape.count(job) == 1, "the job in scrape.yml changed; update this test"
    scrape = scrape.replace(job, f'    scrape_interval: {SCRAPE_INTERVAL}\n    static_configs:\n'
                                 f'      - targets: ["{metrics_address}"]\n')
    head = (f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n")
    return head + scrape + token_job(hub_address, token_file)


# --- the load ------------------------------------------------------------------------------------------------------


class Load:
    """What the test did, to compare with what Prometheus saw."""

    def __init__(self):
        self.calls = {}        # tool -> tools/call made
        self.failed = {}       # tool -> of those, answered with an error or isError
        self.initializes = {"sse": 0, "streamable": 0}
        self.per_transport = {"sse": 0, "streamable": 0}  # tools/call per transport label
        self.listed = set()    # tool names the server listed

    def label(self, name: str) -> str:
        """gen_ai_tool_name of a call: the tool's name if the server listed it, else `_other`."""
        return name if name in self.listed else "_other"

    def count(self, name: str, failed: bool):
        self.calls[name] = self.calls.get(name, 0) + 1
        self.failed[name] = self.failed.get(name, 0) + int(failed)

    @property
    def total(self):
        return sum(self.calls.values())


async def calls(hub, transport: str, load: Load, plan: list[tuple[str, dict]]):
    label = "sse" if transport == "sse" else "streamable"
    async with connect(hub, SERVER, transport) as s:
        load.initializes[label] += 1
        # As clients do; the hub labels a call with its tool's name only once the server has listed it.
        load.listed |= {t.name for t in (await s.list_tools()).tools}
        for name, args in plan:
            try:
                r = await s.call_tool(name, args)
                failed = bool(r.is_error)
                if name == "echo":
                    assert text_of(r) == args["text"]
            except MCPError as e:  # a JSON-RPC error answer
                if name in ("echo", "add"):
                    raise AssertionError(f"{name} failed through the hub: {e!r}")
                failed = True
            load.count(name, failed)
            load.per_transport[label] += 1


def status(hub) -> dict:
    req = urllib.request.Request(hub.url("/status"), headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return next(s for s in json.loads(r.read())["servers"] if s["name"] == SERVER)


CLIENT_TOKEN = "laptop-observability-token"


def named_client_list(hub):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    req = urllib.request.Request(hub.url(f"/{SERVER}/mcp"), data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream",
                                          "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and "echo" in r.read().decode()


def raw_initialize(hub) -> str:
    """A 2025 streamable session made by hand and left open: the SDK clients close theirs."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "observability-test", "version": "1"}}}
    req = urllib.request.Request(hub.url(f"/{SERVER}/mcp"), data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        session = r.headers["Mcp-Session-Id"]
        r.read()
    assert session
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    req = urllib.request.Request(hub.url(f"/{SERVER}/mcp"), data=json.dumps(note).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream",
                                          "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
    urllib.request.urlopen(req, timeout=30).read()
    return session


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """Runs the whole scenario once: hub, Prometheus, load, crash, recovery, load."""
    tmp = tmp_path_factory.mktemp("observability")
    metrics_port = free_port()
    hub = Hub({SERVER: {"command": FIXTURE, "start": "eager"}},
              {"options": {"metricsListen": f"127.0.0.1:{metrics_port}", "metricsTokens": [METRICS_TOKEN],
                           "clients": {"laptop": {"token": CLIENT_TOKEN}}}},
              tmp=tmp)
    prom = None
    try:
        token_file = tmp / "mcp-hub.token"
        token_file.write_text(METRICS_TOKEN + "\n")
        config = render_config(f"127.0.0.1:{metrics_port}", hub.base.removeprefix("http://"), token_file)
        prom = Prometheus(config, tmp_path_factory.mktemp("prometheus"))
        for job in ("mcp-hub", "mcp-hub-token"):
            assert prom.settle(f'up{{job="{job}"}}', 1) == 1, f"Prometheus cannot scrape the {job} job: " \
                f"{prom.api('targets')['activeTargets']}"
        # The first scrapes see the upstream up before anything happens.
        assert prom.settle(f'mcphub_upstream_up{{job="mcp-hub", server="{SERVER}"}}', 1) == 1

        load = Load()
        echo = [("echo", {"text": f"call {i}"}) for i in range(10)]
        add = [("add", {"a": i, "b": 1}) for i in range(10)]
        failing = [("no_such_tool", {}), ("test_error_handling", {})] * 2
        run(calls(hub, "sse", load, echo + add))
        run(calls(hub, "streamable-http", load, echo + failing))

        pid = status(hub)["pid"]
        run(calls(hub, "streamable-http", load, [("crash", {})]))
        deadline = time.time() + 30
        while True:
            s = status(hub)
            if s["state"] == "ready" and s["restarts"] == 1 and s["pid"] != pid:
                break
            assert time.time() < deadline, f"the fixture did not come back: {s}"
            time.sleep(0.1)

        run(calls(hub, "streamable-http", load, echo))
        # A named client's stateless 2026-07-28 tools/list: a series of the
        # per-client panel, and no session or tools/call the others count.
        named_client_list(hub)
        session = raw_initialize(hub)
        load.initializes["streamable"] += 1
        # Two refused requests, for the auth failure counter.
        for bad in ("wrong-token", None):
            req = urllib.request.Request(hub.url("/status"), headers={"Authorization": f"Bearer {bad}"} if bad else {})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=10)
            assert refused.value.code == 401
        # Two scrapes past the end, so even a 250 ms subquery step lands after the last change.
        prom.scraped_after(time.time() + 0.6)
        yield hub, prom, load, session, metrics_port
    finally:
        if prom:
            prom.stop()
        hub.stop()


TOOLS_CALL = f'job="mcp-hub", server="{SERVER}", mcp_method_name="tools/call"'


def test_calls_counter_equals_the_calls_made(observed):
    hub, prom, load, _, _ = observed
    got = prom.settle(f"sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}}})", load.total)
    print(f"\n{load.total} tools/call made {load.calls}; Prometheus counted {got}")
    assert got == load.total
    per_label = {}
    for name, n in load.calls.items():
        per_label[load.label(name)] = per_label.get(load.label(name), 0) + n
    assert per_label["_other"] == 2, per_label  # the unknown tool, and only it
    for label, n in per_label.items():
        assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}, '
                           f'gen_ai_tool_name="{label}"}})') == n, label
    assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}, '
                       f'error_type="-32602"}})') == 2  # the unknown tool's JSON-RPC error code
    failed = sum(load.failed.values())
    assert failed == 5, load.failed  # two unknown tools, two isError results, the crash
    assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}, error_type!=""}})') == failed
    assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}, '
                       f'error_type="tool_error"}})') == 2
    for transport, n in load.per_transport.items():
        assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_count{{{TOOLS_CALL}, '
                           f'transport="{transport}", protocol_era="legacy"}})') == n, transport
    # The token job scraped the same counters.
    token = TOOLS_CALL.replace('job="mcp-hub"', 'job="mcp-hub-token"')
    assert prom.settle(f"sum(mcp_server_operation_duration_seconds_count{{{token}}})", load.total) == load.total


def test_duration_histogram_count_equals_the_calls(observed):
    hub, prom, load, _, _ = observed
    n = load.total
    assert prom.settle(f'sum(mcp_server_operation_duration_seconds_bucket{{{TOOLS_CALL}, le="+Inf"}})', n) == n
    # Every call of the fixture is fast: all of them in the first buckets, none past 1 s.
    assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_bucket{{{TOOLS_CALL}, le=~"1|1[.]0"}})') == n
    assert prom.scalar(f'sum(mcp_server_operation_duration_seconds_sum{{{TOOLS_CALL}}})') < n * 1.0
    # The hub as client of the fixture saw each call too (the crash included: it was sent).
    client = f'job="mcp-hub", server="{SERVER}", mcp_method_name="tools/call", network_transport="pipe"'
    assert prom.settle(f"sum(mcp_client_operation_duration_seconds_count{{{client}}})", n) == n
    # Session establishment: one initialize per session opened, per transport.
    for transport, made in load.initializes.items():
        assert prom.settle(f'sum(mcp_server_operation_duration_seconds_count{{job="mcp-hub", server="{SERVER}", '
                           f'mcp_method_name="initialize", transport="{transport}"}})', made) == made, transport


def test_one_restart_and_up_went_1_0_1(observed):
    hub, prom, _, _, metrics_port = observed
    restarts = prom.settle(f'sum(mcphub_upstream_restarts_total{{job="mcp-hub", server="{SERVER}"}})', 1)
    assert restarts == 1
    reasons = prom.query(f'mcphub_upstream_restarts_total{{job="mcp-hub", server="{SERVER}"}} > 0')
    assert [r["metric"]["reason"] for r in reasons] == ["exit"], reasons
    # The raw samples, in order: a range vector selector returns what was scraped.
    series = prom.query(f'mcphub_upstream_up{{job="mcp-hub", server="{SERVER}"}}[10m]')
    assert len(series) == 1, series
    values = [int(float(v)) for _, v in series[0]["values"]]
    runs = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    print(f"\nmcphub_upstream_up: {len(values)} samples, {values.count(0)} of them 0; runs {runs}")
    assert runs == [1, 0, 1], values
    assert prom.scalar(f'changes(mcphub_upstream_up{{job="mcp-hub", server="{SERVER}"}}[10m])') == 2
    assert prom.scalar(f'min_over_time(mcphub_upstream_up{{job="mcp-hub", server="{SERVER}"}}[10m])') == 0
    # The state followed: it was in backoff in between, and is ready now.
    assert prom.scalar(f'max_over_time(mcphub_upstream_state{{job="mcp-hub", server="{SERVER}", '
                       f'state="backoff"}}[10m])') == 1
    assert prom.scalar(f'mcphub_upstream_state{{job="mcp-hub", server="{SERVER}", state="ready"}}') == 1
    # The dashboard's state timeline (one number per state) went ready -> backoff (-> starting) -> ready.
    _, targets = dashboard_targets()
    state = next(t for p, t in targets if p["title"] == "Upstream state")
    series = prom.query(f"({substitute(state['expr'])})[10m:250ms]")
    mine = [x for x in series if x["metric"]["instance"] == f"127.0.0.1:{metrics_port}"]  # not the token job's
    assert len(mine) == 1, series
    values = [int(float(v)) for _, v in mine[0]["values"]]
    runs = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    print(f"state timeline: runs {runs} (2 ready, 3 backoff, 1 starting)")
    assert runs[0] == 2 and runs[-1] == 2 and 3 in runs and set(runs) <= {1, 2, 3}, values
    # The README's availability query sees the second or so of backoff.
    availability = prom.scalar(f'1 - avg_over_time(max by (server) (mcphub_upstream_state{{job="mcp-hub", '
                               f'server="{SERVER}", state=~"backoff|failed"}})[10m:])')
    print(f"availability over the test: {availability:.3f}")
    assert 0 < availability < 1


def test_sessions_and_auth_failures(observed):
    hub, prom, _, _, _ = observed
    # The SDK clients closed their sessions; the hand-made one is still open.
    sessions = prom.query(f'mcphub_sessions_active{{job="mcp-hub", server="{SERVER}"}} > 0')
    assert [(s["metric"]["transport"], s["value"][1]) for s in sessions] == [("streamable", "1")], sessions
    # One request with a wrong token, one with none; the token job's scrapes are not among them.
    for reason in ("invalid", "missing"):
        assert prom.settle(f'sum(mcphub_auth_failures_total{{job="mcp-hub", reason="{reason}"}})', 1) == 1, reason
    assert prom.scalar('sum(mcphub_auth_failures_total{job="mcp-hub"})') == 2


def test_packaged_rules_load_and_evaluate(observed):
    _, prom, _, _, _ = observed
    deadline = time.time() + 10
    while True:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        if (rules and all(r["health"] != "unknown" for r in rules)) or time.time() > deadline:
            break
        time.sleep(0.5)
    names = sorted(r["name"] for r in rules)
    assert names == ["MCPHubServerDown", "MCPHubServerRestarting", "MCPHubSessionEstablishmentSlow",
                     "MCPHubToolErrorRatioHigh"], names
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert bad == [], bad


# --- promtool ------------------------------------------------------------------------------------------------------


def test_promtool_check_rules():
    r = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 4 rules found" in r.stdout, r.stdout


def test_promtool_alert_unit_tests():
    """packaging/prometheus/mcp-hub.rules.test.yml: each alert fires on the series it is meant for, with the
    annotations it renders, and not before its time."""
    r = subprocess.run([tool("promtool"), "test", "rules", str(RULES_TEST)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_metrics_on_a_scrape(observed):
    """Parse errors and lint problems both fail: the names are the interface the dashboard and the alerts are
    written against, and every lint rule (help text, _total on counters, base units, snake_case) is one the
    OpenTelemetry names are meant to meet. Renaming later would break every dashboard built on them.
    Debian's promtool (2.42) reads only the 0.0.4 text format, which is what the hub serves; were it to serve
    OpenMetrics, promtool would see each counter as an untyped `x_total` without help, so the format is
    asserted first."""
    _, _, _, _, metrics_port = observed
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        content_type, scrape = r.headers.get("Content-Type", ""), r.read().decode()
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    assert "mcphub_upstream_up" in scrape and "mcp_server_operation_duration_seconds_bucket" in scrape
    r = subprocess.run([tool("promtool"), "check", "metrics"], input=scrape, capture_output=True, text=True)
    print(f"\n/metrics answered {content_type}, {len(scrape.splitlines())} lines; promtool: rc {r.returncode} "
          f"{(r.stdout + r.stderr).strip() or 'clean'}")
    assert r.returncode == 0, f"promtool check metrics (rc {r.returncode}):\n{r.stdout}{r.stderr}"


# --- the Grafana dashboard -----------------------------------------------------------------------------------------


def dashboard_targets():
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            out.append((panel, t))
    return dash, out


def test_dashboard_is_portable():
    dash, targets = dashboard_targets()
    assert dash["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["loki"]["type"] == "datasource" and variables["loki"]["query"] == "loki"
    assert variables["server"]["definition"] == "label_values(mcphub_upstream_up, server)"
    # Data sources only through the variables, never a fixed uid.
    refs = [p["datasource"] for p in dash["panels"] if "datasource" in p] + [t["datasource"] for _, t in targets]
    assert {json.dumps(r, sort_keys=True) for r in refs} == {
        json.dumps({"type": "prometheus", "uid": "${datasource}"}, sort_keys=True),
        json.dumps({"type": "loki", "uid": "${loki}"}, sort_keys=True)}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in dash["panels"])
    types = {p["type"] for p in dash["panels"]}
    assert {"state-timeline", "logs", "timeseries", "stat"} <= types, types
    for wanted in ("calls/s", "error ratio", "duration", "transport", "up", "restarts", "memory", "CPU", "Auth",
                   "named client"):
        assert wanted.lower() in titles.lower(), (wanted, titles)


def substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def test_every_dashboard_query_returns_data(observed):
    _, prom, _, _, _ = observed
    _, targets = dashboard_targets()
    checked, failures = 0, []
    for panel, t in targets:
        if t["datasource"]["type"] != "prometheus":
            continue
        expr = substitute(t["expr"])
        try:
            result = prom.query(expr)
        except AssertionError as e:
            failures.append(f"{panel['title']}: {e}")
            continue
        checked += 1
        if not result:
            failures.append(f"{panel['title']}: no series for {expr}")
    # The $server variable: label_values(mcphub_upstream_up, server), as Grafana asks for it.
    assert prom.api("label/server/values", **{"match[]": "mcphub_upstream_up"}) == [SERVER]
    print(f"\n{checked} PromQL expressions of the dashboard ran against Prometheus")
    assert checked >= 20
    assert failures == [], "\n".join(failures)
