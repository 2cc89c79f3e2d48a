"""Every recipe in README.md, run as written, so that none can rot.

README.md marks each recipe with an HTML comment, `<!-- recipe: NAME -->`, just
before its block (indented shell lines, or a fenced JSON/TOML file). This test
reads those blocks from README.md itself, replaces only the placeholders the
Recipes section names (the directory `/srv/projects`, the two database URIs,
the port `8686`, the hub's address `linuxserver.lan:9090`), runs the lines,
and then calls a real tool of each server through the hub over `/NAME/mcp`
and `/NAME/sse`:

- the `mcp-hub …` lines with the real CLI against a running hub (its config
  in a temp dir, given as MCP_HUB_CONFIG; MCP_HUB_PID_FILE and MCP_HUB_URL
  point the CLI at that hub, as systemd's unit and the listen address would);
- `systemctl reload mcp-hub` as the unit's ExecReload does it (SIGHUP to the
  hub), then waiting until the hub lists every configured server;
- a line that starts a server (postgres-mcp's own SSE transport) in the
  background, with the postgres-mcp the `pg` recipe installed on PATH;
- the client recipes with the real clients from npm (Claude Code, Gemini CLI,
  Codex); VS Code does not run here, so its entry's URL and header are used
  for a real MCP session instead, and it is compared with `client-config`.

The recipes install their packages from the registries at their newest
versions, as a reader's would: a release that breaks a recipe fails here.
A missing recipe block fails `test_every_recipe_is_in_the_readme`.
"""

import asyncio
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import tomllib
import urllib.request
import http.server
import functools
from contextlib import asynccontextmanager

import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import HERE, NODE_MODULES, ROOT, TOKEN, Hub, Proc, free_port, hub_binary, node22
from test_postgres_mcp import python_312

README = ROOT / "README.md"
VENV_BIN = str(HERE / ".venv" / "bin")  # uvx, from tests/interop/requirements.txt
NPM_BIN = NODE_MODULES / ".bin"
CHROMIUM = "/usr/bin/chromium"
TRANSPORTS = ["streamable-http", "sse"]
# The recipes README.md must hold, each under `<!-- recipe: NAME -->`.
SERVER_RECIPES = ["pg", "tsdb", "pgsse", "fs", "fetch", "fetch-lan", "playwright"]
CLIENT_RECIPES = ["claude-code", "vscode", "gemini", "codex", "open-webui"]
# Placeholders, as README's Recipes section lists them.
MAIN_URI = "postgresql://mcp@127.0.0.1:5432/maindb"
TS_URI = "postgresql://mcp@127.0.0.1:5433/tsdb"
PROJECTS = "/srv/projects"
SSE_PORT = "8686"
HUB_ADDR = "linuxserver.lan:9090"
# A first install resolves and downloads from the registries.
INSTALL_TIMEOUT = 600


def recipes() -> dict[str, tuple[str, str]]:
    """NAME -> (kind, text) for each `<!-- recipe: NAME -->` in README.md: kind is
    "sh" for an indented block, else the fence's language."""
    lines = README.read_text().splitlines()
    found = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"<!-- recipe: ([\w-]+) -->", line.strip())
        if not m:
            continue
        assert m.group(1) not in found, f"README.md: recipe {m.group(1)} appears twice"
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        assert j < len(lines), f"README.md: recipe {m.group(1)} has no block after it"
        if lines[j].startswith("```"):
            kind = lines[j][3:].strip() or "text"
            end = lines.index("```", j + 1)
            body = lines[j + 1:end]
        else:
            assert lines[j].startswith("    "), f"README.md line {j + 1}: recipe {m.group(1)}: no block follows"
            kind, body = "sh", []
            while j < len(lines) and lines[j].startswith("    "):
                body.append(lines[j][4:])
                j += 1
        found[m.group(1)] = (kind, "\n".join(body) + "\n")
    return found


def recipe(name: str, kind: str, subst: dict | None = None) -> str:
    all_ = recipes()
    assert name in all_, f"README.md has no `<!-- recipe: {name} -->` block"
    k, text = all_[name]
    assert k == kind, f"README.md recipe {name}: a {k} block, expected {kind}"
    for placeholder, value in (subst or {}).items():
        assert placeholder in text, f"README.md recipe {name} no longer holds the placeholder {placeholder!r}"
        text = text.replace(placeholder, value)
    return text


def commands(text: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments and
    blank lines dropped."""
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(line.strip())
    return out


def test_every_recipe_is_in_the_readme():
    found = recipes()
    missing = [n for n in SERVER_RECIPES + CLIENT_RECIPES if n not in found]
    assert not missing, f"README.md lost the recipe blocks {missing}"
    unknown = sorted(set(found) - set(SERVER_RECIPES + CLIENT_RECIPES))
    assert not unknown, f"README.md has recipes no test runs: {unknown} (add them to test_recipes.py)"


def test_every_add_line_in_the_readme_is_a_recipe():
    """An `mcp-hub add` command anywhere in README.md's code blocks (the
    Install and Operate overviews) is one a recipe runs, word for word."""
    run = {tuple(shlex.split(c, comments=True)) for kind, text in recipes().values() if kind == "sh" for c in commands(text)}
    text = README.read_text().replace("\\\n", " ")
    stray = []
    for line in text.splitlines():
        if line.startswith("    mcp-hub add ") or line.startswith("    $ mcp-hub add "):
            words = tuple(shlex.split(line, comments=True))
            if words not in run:
                stray.append(line.strip())
    assert not stray, f"README.md shows `mcp-hub add` lines that no recipe runs: {stray}"


# --- the hub the server recipes are run against ---------------------------------------------


class RecipeHub:
    """A running hub with an empty config in a temp dir, and the environment
    the README's `mcp-hub` lines get."""

    def __init__(self, tmp: pathlib.Path, pybin: str):
        os.chmod(tmp, 0o755)
        self.tmp = tmp
        self.state = tmp / "state"
        self.state.mkdir(mode=0o755)
        self.pid_file = tmp / "mcp-hub.pid"
        self.proxy = {"options": {"stateDir": str(self.state), "authTokens": [TOKEN]}}
        # The machine: a Python >= 3.12 and uv's uvx on the hub's PATH, as an
        # operator would have them; node, npx and chromium from Debian.
        self.path = f"{pybin}:{VENV_BIN}:{os.environ['PATH']}"
        env = {"PATH": self.path, "MCP_HUB_PID_FILE": str(self.pid_file)}
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
        self.hub = Hub({}, proxy=self.proxy, tmp=tmp, env=env)
        self.config = self.hub.config
        self.env = {**os.environ, **env, "MCP_HUB_CONFIG": str(self.config), "MCP_HUB_URL": self.hub.base}

    def url(self, path):
        return self.hub.url(path)

    def status(self) -> dict:
        req = urllib.request.Request(self.url("/status"), headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def server(self, name) -> dict:
        return next(s for s in self.status()["servers"] if s["name"] == name)

    def configured(self) -> set[str]:
        names = set()
        for f in (self.tmp / "conf.d").glob("*.json"):
            names |= set(json.loads(f.read_text()).get("mcpServers", {}))
        return names

    def reload(self):
        """`systemctl reload mcp-hub`: the unit's ExecReload is a SIGHUP to the
        hub. Then wait until the hub lists every configured server."""
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGHUP)
        want = self.configured()
        deadline = time.time() + 15
        while time.time() < deadline:
            if want <= {s["name"] for s in self.status()["servers"]}:
                return
            time.sleep(0.1)
        raise AssertionError(f"the hub did not list {want} after SIGHUP:\n" + "\n".join(self.hub.logs[-30:]))

    def sh(self, cmd: str, timeout=INSTALL_TIMEOUT):
        """One command line of a recipe, as written."""
        if cmd == "systemctl reload mcp-hub":
            print(f"\n$ {cmd}  (SIGHUP to the hub)")
            self.reload()
            return ""
        assert cmd.startswith("mcp-hub "), f"a recipe line this test does not know how to run: {cmd}"
        bindir = self.tmp / "bin"
        if not bindir.exists():
            bindir.mkdir()
            (bindir / "mcp-hub").symlink_to(hub_binary())
        start = time.time()
        p = subprocess.run(["bash", "-euc", cmd], capture_output=True, text=True, timeout=timeout,
                           env={**self.env, "PATH": f"{bindir}:{self.path}"}, cwd=self.tmp)
        out = p.stdout + p.stderr
        print(f"\n$ {cmd}  [{time.time() - start:.1f}s, exit {p.returncode}]\n{out}")
        assert p.returncode == 0, f"README recipe line failed: {cmd}\n{out}\nhub log:\n" + "\n".join(
            self.hub.logs[-40:])
        return out

    def run_recipe(self, text: str):
        return [self.sh(c) for c in commands(text)]

    def stop(self):
        self.hub.stop()


@pytest.fixture(scope="module")
def rhub(tmp_path_factory):
    exe, _ = python_312()
    h = RecipeHub(tmp_path_factory.mktemp("recipes"), os.path.dirname(exe))
    yield h
    h.stop()
    print("\n".join(h.hub.logs[-60:]))


@asynccontextmanager
async def connect(url, transport, headers=None):
    headers = headers or {"Authorization": f"Bearer {TOKEN}"}
    if transport == "sse":
        ctx = sse_client(url, headers=headers, timeout=30, sse_read_timeout=300)
    else:
        client = create_mcp_http_client(headers=headers)
        client.timeout = 300
        ctx = streamable_http_client(url, http_client=client)
    async with ctx as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            yield s


def route(rhub, name, transport):
    return rhub.url(f"/{name}/{'sse' if transport == 'sse' else 'mcp'}")


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def run(coro, timeout=240):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def call(rhub, name, transport, tool, args):
    async def go():
        async with connect(route(rhub, name, transport), transport) as s:
            return await s.call_tool(tool, args)
    return run(go())


# --- postgres-mcp, twice, and as an SSE upstream ---------------------------------------------


def main_uri(port):
    return {MAIN_URI: f"postgresql://postgres@127.0.0.1:{port}/maindb"}


def ts_uri(port):
    # TimescaleDB is not in Debian's archive: a second database of the same
    # plain PostgreSQL, with rows of its own, stands in for it.
    return {TS_URI: f"postgresql://postgres@127.0.0.1:{port}/tsdb"}


@pytest.fixture(scope="module")
def pg(rhub, postgres):
    start = time.time()
    rhub.run_recipe(recipe("pg", "sh", main_uri(postgres)))
    print(f"pg recipe: {time.time() - start:.0f}s")
    return rhub


@pytest.fixture(scope="module")
def tsdb(rhub, postgres):
    rhub.run_recipe(recipe("tsdb", "sh", ts_uri(postgres)))
    return rhub


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pg_recipe(pg, transport):
    r = call(pg, "pg", transport, "execute_sql", {"sql": "SELECT name FROM notes ORDER BY id"})
    assert not r.is_error and "main-first" in text_of(r) and "main-second" in text_of(r), text_of(r)
    st = pg.server("pg")
    assert st["state"] == "ready" and st["sandbox"]["enabled"] is True, st


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tsdb_recipe_is_a_second_postgres_mcp(tsdb, transport):
    r = call(tsdb, "tsdb", transport, "execute_sql", {"sql": "SELECT name FROM notes ORDER BY id"})
    assert not r.is_error and "ts-first" in text_of(r) and "main-first" not in text_of(r), text_of(r)


def test_pgsse_recipe(pg, postgres, tmp_path):
    port = free_port()
    lines = commands(recipe("pgsse", "sh", {**main_uri(postgres), SSE_PORT: str(port)}))
    assert len(lines) == 2 and "postgres-mcp --transport sse" in lines[0], lines
    # postgres-mcp itself: the one the pg recipe's install put in the hub's stateDir.
    rec = json.loads((pg.state / "pg" / "pkg" / ".mcp-hub-install.json").read_text())["current"]
    program = pg.state / "pg" / "pkg" / rec["program"]
    assert program.name == "postgres-mcp", rec
    server = Proc("postgres-mcp-sse", ["bash", "-euc", lines[0]], port, tmp_path,
                  env={"PATH": f"{program.parent}:{os.environ['PATH']}"})
    try:
        pg.sh(lines[1])
        for transport in TRANSPORTS:
            r = call(pg, "pgsse", transport, "execute_sql", {"sql": "SELECT name FROM notes WHERE id = 2"})
            assert not r.is_error and "main-second" in text_of(r), text_of(r)
    finally:
        server.stop()


# --- files -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def projects():
    # Not under pytest's temp dir, which is private to root: a root hub runs
    # its servers as nobody.
    d = pathlib.Path(tempfile.mkdtemp(prefix="mcp-hub-projects-"))
    os.chmod(d, 0o755)
    (d / "plan.md").write_text("# the plan\nship the recipes\n")
    os.chmod(d / "plan.md", 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fs_recipe(rhub, projects, transport):
    if "fs" not in rhub.configured():
        rhub.run_recipe(recipe("fs", "sh", {PROJECTS: str(projects)}))
    st = rhub.server("fs")
    assert st["sandbox"]["network"] == "none", st

    async def go():
        async with connect(route(rhub, "fs", transport), transport) as s:
            r = await s.call_tool("read_text_file", {"path": str(projects / "plan.md")})
            assert not r.is_error and "ship the recipes" in text_of(r), text_of(r)
            # --read: read-only, whatever the server itself allows.
            r = await s.call_tool("write_file", {"path": str(projects / "new.md"), "content": "x"})
            assert r.is_error, text_of(r)
    run(go())
    assert not (projects / "new.md").exists()


# --- fetch -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A web site on 127.0.0.1 whose robots.txt keeps robots out of /private/."""
    root = tmp_path_factory.mktemp("site")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "page.html").write_text("<html><head><title>Recipes</title></head><body><h1>Hello</h1>"
                                    "<p>The fetch recipe reached this page.</p></body></html>")
    (root / "private").mkdir()
    (root / "private" / "page.html").write_text("<html><body><p>robots may not read this</p></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def fetch(rhub):
    if "fetch" not in rhub.configured():
        rhub.run_recipe(recipe("fetch", "sh"))
    return rhub


def test_fetch_recipe_refuses_loopback(fetch, site):
    """The plain recipe: a loopback page is refused (and the refusal names
    the flag), which is all CI can fetch without the internet."""
    for transport in TRANSPORTS:
        r = call(fetch, "fetch", transport, "fetch", {"url": f"{site}/page.html"})
        assert r.is_error and "--allow-private-ips" in text_of(r), text_of(r)


def test_fetch_lan_recipe_fetches_and_honours_robots_txt(fetch, site):
    before = fetch.server("fetch")["sandbox"]["package"]
    fetch.run_recipe(recipe("fetch-lan", "sh"))
    # Only the arguments changed: the same install.
    assert fetch.server("fetch")["sandbox"]["package"] == before
    for transport in TRANSPORTS:
        r = call(fetch, "fetch", transport, "fetch", {"url": f"{site}/page.html"})
        assert not r.is_error and "The fetch recipe reached this page." in text_of(r), text_of(r)
        r = call(fetch, "fetch", transport, "fetch", {"url": f"{site}/private/page.html"})
        assert r.is_error and "robots.txt" in text_of(r) and "robots may not read" not in text_of(r), text_of(r)


def test_fetch_without_the_readabilipy_override_fails_on_html(fetch, site):
    """The control for the recipe's `--override readabilipy==0.2.0`: with
    readabilipy 0.3.0 and node on PATH, the first HTML page makes it run `npm
    install` into its own (read-only) package directory, and the call fails.
    When this passes no more, the override and its README note can go."""
    code = subprocess.run([hub_binary(), "add", "fetch_plain", "--no-test", "--", "uvx", "mcp-server-fetch",
                           "--allow-private-ips"], env=fetch.env, capture_output=True, text=True, timeout=60)
    assert code.returncode == 0, code.stderr
    r = call(fetch, "fetch_plain", "streamable-http", "fetch", {"url": f"{site}/page.html"})
    assert r.is_error and "The fetch recipe reached this page." not in text_of(r), text_of(r)
    pinned = fetch.server("fetch_plain")["sandbox"]["package"]["pinned"]
    assert any(p.startswith("readabilipy==0.3.") for p in pinned), pinned
    fetch.hub.wait_log(lambda l: "mcp_server=fetch_plain" in l and ("npm install" in l or "npm error" in l))
    log = "\n".join(l for l in fetch.hub.logs if "mcp_server=fetch_plain" in l)
    assert "npm install" in log or "npm error" in log, log[-3000:]
    subprocess.run([hub_binary(), "remove", "fetch_plain"], env=fetch.env, capture_output=True, timeout=60)


# --- playwright ------------------------------------------------------------------------------


PAGE = """<!doctype html><html><head><title>recipe page</title></head>
<body><h1>Browser recipe</h1><button>Press</button></body></html>"""


def test_playwright_recipe(rhub, tmp_path):
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed (scripts/test installs it)"
    rhub.run_recipe(recipe("playwright", "sh"))
    (tmp_path / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for transport in TRANSPORTS:
            async def go():
                async with connect(route(rhub, "playwright", transport), transport) as s:
                    nav = await s.call_tool("browser_navigate",
                                            {"url": f"http://127.0.0.1:{srv.server_address[1]}/index.html"})
                    assert not nav.is_error and "recipe page" in text_of(nav), text_of(nav)
                    snap = text_of(await s.call_tool("browser_snapshot", {}))
                    assert "Browser recipe" in snap and re.search(r'button "Press" \[ref=\w+\]', snap), snap
            run(go())
    finally:
        srv.shutdown()
    st = rhub.server("playwright")
    assert st["sandbox"]["enabled"] is True, st
    entry = json.loads((rhub.tmp / "conf.d" / "playwright.json").read_text())["mcpServers"]["playwright"]
    assert entry["sandbox"] == {"browser": True} and entry["session"] == "per-client", entry


def test_add_can_write_the_browser_profile(rhub):
    p = subprocess.run([hub_binary(), "add", "browser", "--dry-run", "--browser", "--session", "per-client", "--",
                        "npx", "-y", "@playwright/mcp", "--headless", "--isolated", "--executable-path", CHROMIUM],
                       env=rhub.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert '"browser": true' in p.stdout, p.stdout


# --- the clients -----------------------------------------------------------------------------


def client_env(home: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_HUB_", "CODEX_", "GEMINI_", "CLAUDE_"))}
    env.update({
        "HOME": str(home),
        "PATH": f"{NPM_BIN}:{os.environ['PATH']}",
        "MCP_HUB_TOKEN": TOKEN,
        # Offline: no update checks or telemetry.
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "GEMINI_CLI_NO_RELAUNCH": "1",
    })
    return env


def hub_addr(rhub) -> dict:
    return {HUB_ADDR: rhub.hub.base.removeprefix("http://")}


def client_config(rhub, client, *extra) -> str:
    """What `mcp-hub client-config CLIENT` prints for the fetch server, at the
    README's address."""
    p = subprocess.run([hub_binary(), "client-config", client, "--server", "fetch",
                        "--url-base", f"http://{HUB_ADDR}", *extra],
                       env=rhub.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def sh(cmd, home, timeout=120):
    p = subprocess.run(["bash", "-euc", cmd], env=client_env(home), cwd=home, capture_output=True, text=True,
                       timeout=timeout)
    print(f"\n$ {cmd}  [exit {p.returncode}]\n{p.stdout}{p.stderr}")
    return p.returncode, p.stdout + p.stderr, p.stdout


def session_with(url, headers):
    """A real MCP session with a client entry's URL and headers: fetch's tools."""
    async def go():
        async with connect(url, "sse" if url.endswith("/sse") else "streamable-http", headers) as s:
            return {t.name for t in (await s.list_tools()).tools}
    return run(go(), 60)


def test_claude_code_recipe(fetch, tmp_path):
    for cmd in commands(recipe("claude-code", "sh", hub_addr(fetch))):
        assert cmd.startswith("claude mcp add "), cmd
        code, out, _ = sh(cmd, tmp_path)
        assert code == 0, out
    code, out, _ = sh("claude mcp list", tmp_path)
    line = next((l for l in out.splitlines() if l.startswith("fetch:")), None)
    assert line and "Connected" in line and fetch.url("/fetch/mcp") in line, out


def test_vscode_recipe(fetch):
    """VS Code is not on npm: its file is what `client-config vscode` prints,
    and its URL with the header (the password input filled in) is a working
    MCP session."""
    readme = json.loads(recipe("vscode", "json"))
    assert readme == json.loads(client_config(fetch, "vscode")), "README's VS Code file and client-config differ"
    entry = json.loads(recipe("vscode", "json", hub_addr(fetch)))["servers"]["fetch"]
    assert entry["type"] == "http"
    headers = {k: v.replace("${input:mcp-hub-token}", TOKEN) for k, v in entry["headers"].items()}
    assert "fetch" in session_with(entry["url"], headers)


def test_gemini_recipe(fetch, tmp_path):
    readme = json.loads(recipe("gemini", "json"))["mcpServers"]
    assert readme["fetch"] == json.loads(client_config(fetch, "gemini"))["mcpServers"]["fetch"]
    assert readme["fetch_sse"] == json.loads(client_config(fetch, "gemini", "--transport", "sse"))["mcpServers"]["fetch"]
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text(recipe("gemini", "json", hub_addr(fetch)))
    # Gemini CLI ignores MCP servers in folders the user has not trusted.
    (tmp_path / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(tmp_path): "TRUST_FOLDER"}))
    code, out, _ = sh(f"{node22()} {NPM_BIN / 'gemini'} mcp list", tmp_path)
    for name, path in [("fetch", "/fetch/mcp"), ("fetch_sse", "/fetch/sse")]:
        line = next((l for l in out.splitlines() if f"{name}:" in l and fetch.url(path) in l), None)
        assert line and "- Connected" in line, out


def test_codex_recipe(fetch, tmp_path):
    readme = tomllib.loads(recipe("codex", "toml"))
    assert readme == tomllib.loads(client_config(fetch, "codex")), "README's Codex entry and client-config differ"
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(recipe("codex", "toml", hub_addr(fetch)))
    code, out, stdout = sh("codex mcp list --json", tmp_path)
    assert code == 0, out
    print("NOTE: codex connects to MCP servers only inside a model session; offline, its parse of the file is "
          "tested, and the entry's URL and token variable are used for a real session")
    entry = next(e for e in json.loads(stdout) if e["name"] == "fetch")
    assert entry["enabled"] is True and entry["transport"]["type"] == "streamable_http", entry
    assert entry["transport"]["url"] == fetch.url("/fetch/mcp"), entry
    var = entry["transport"]["bearer_token_env_var"]
    assert "fetch" in session_with(entry["transport"]["url"], {"Authorization": f"Bearer {client_env(tmp_path)[var]}"})


def test_open_webui_recipe(fetch, projects, tmp_path):
    # The Groups section's `all`, and the hub's address as baseURL.
    if "fs" not in fetch.configured():
        fetch.run_recipe(recipe("fs", "sh", {PROJECTS: str(projects)}))
    cfg = json.loads(fetch.config.read_text())
    cfg["mcpProxy"]["baseURL"] = fetch.hub.base
    cfg["groups"] = {"all": {"servers": ["fetch", "fs"]}}
    fetch.config.write_text(json.dumps(cfg, indent=2))
    fetch.reload()
    text = recipe("open-webui", "sh")
    lines = commands(text)
    assert len(lines) == 3, lines
    outs = []
    for cmd in lines:
        assert cmd.startswith("mcp-hub client-config open-webui"), cmd
        p = subprocess.run(["bash", "-euc", cmd.replace("mcp-hub", shlex.quote(hub_binary()), 1)],
                           env=fetch.env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        print(f"\n$ {cmd}  [exit {p.returncode}]\n{p.stdout}{p.stderr}")
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    one = json.loads(outs[0])
    assert one["type"] == "mcp" and one["url"] == fetch.url("/fetch/mcp"), one
    group = json.loads(outs[1])
    assert group["url"] == fetch.url("/g/all/mcp"), group
    # The files the recipe's comment lists, for fetch and the group; the
    # other servers this hub has get theirs alike.
    listed = re.search(r"^# (owui/.*)$", text, re.M).group(1).split(", ")
    written = {str(p.relative_to(tmp_path)) for p in (tmp_path / "owui").rglob("*.json")}
    assert set(listed) <= written, (sorted(written), listed)
    others = {f"owui/{n}{ext}" for n in fetch.configured() - {"fetch"} for ext in (".json", ".openapi.json")}
    assert written - set(listed) == others, sorted(written)
    mcp_entry = json.loads((tmp_path / "owui" / "fetch.json").read_text())
    if isinstance(mcp_entry, list):
        mcp_entry = mcp_entry[0]
    assert "fetch" in session_with(mcp_entry["url"], {"Authorization": f"Bearer {TOKEN}"})
    api = json.loads((tmp_path / "owui" / "fetch.openapi.json").read_text())
    if isinstance(api, list):
        api = api[0]
    req = urllib.request.Request(f"{api['url']}/{api['path']}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        spec = json.load(r)
    assert any("fetch" in p for p in spec["paths"]), spec["paths"].keys()
