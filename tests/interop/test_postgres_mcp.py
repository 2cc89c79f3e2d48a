"""crystaldba's postgres-mcp 0.3.0 (PyPI `postgres-mcp`), the seed's real
PostgreSQL setup, end to end through the hub.

Every release of it pins `pglast==7.2.0`, which the index does not carry,
leaves `mcp` unbounded (mcp 2.x breaks it) and needs Python >= 3.12. So it is
added the way the README says:

    mcp-hub add pg --install-python '>=3.12' --override pglast==7.22 --override 'mcp<2' \\
      -- uvx postgres-mcp --access-mode=restricted

installed with `mcp-hub install pg` (the machine's Python >= 3.12, never a
download), and run in the default sandbox against the `postgres` fixture's
maindb: list_schemas, list_objects, execute_sql, explain_query and
analyze_db_health over /pg/sse and /pg/mcp with the Python SDK in the 2025 era
and pinned to 2026-07-28, and restricted mode refusing a DELETE. Without the
overrides the install fails with the resolver's explanation; with no Python
>= 3.12 on the server's PATH `mcp-hub check` fails naming what is missing. The
same package, started by hand with its SSE flags (`--transport sse --sse-host
--sse-port`), is a `url` upstream too (`mcp-hub add pgsse --url …/sse`).

This machine's Python >= 3.12 is found at run time (on PATH, under
`pyenv root`, or uv's own); without one the test fails, never skips."""

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import HERE, TOKEN, Hub, Proc, free_port, hub_binary
from test_modern import client
from test_python_sdk import TRANSPORTS, connect, run, text_of

CA = "/etc/ssl/certs/ca-certificates.crt"
VENV_BIN = str(HERE / ".venv" / "bin")  # uvx and uv, from tests/interop/requirements.txt
OVERRIDES = ["pglast==7.22", "mcp<2"]
INSTALL_TIMEOUT = 900  # a first install resolves and downloads from PyPI


def interpreter(c: str):
    """(the real interpreter, its version) for a candidate, or None."""
    if c.endswith("-config") or not os.access(c, os.X_OK):
        return None
    try:
        p = subprocess.run([c, "-I", "-c", "import sys; print(sys.executable); "
                                            "print('.'.join(map(str, sys.version_info[:3])))"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = p.stdout.split()
    if p.returncode != 0 or len(lines) != 2:
        return None
    return os.path.realpath(lines[0]), tuple(int(x) for x in lines[1].split("."))


def python_312():
    """A Python >= 3.12 on this machine: (interpreter, version). Looks on PATH
    (pyenv's shims only answer for a selected version, so each candidate is
    asked for its real `sys.executable`), under `pyenv root`/versions, and in
    uv's managed Pythons. The oldest that fits: the likeliest to have wheels
    for every dependency."""
    candidates = []
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin"]:
        candidates += glob.glob(os.path.join(d, "python3.*")) + [os.path.join(d, "python3")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip()
        if root:
            candidates += sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3")))
    candidates += glob.glob(os.path.expanduser("~/.local/share/uv/python/*/bin/python3"))
    found = dict(v for v in map(interpreter, candidates) if v and v[1] >= (3, 12))
    if not found:
        pytest.fail("postgres-mcp 0.3.0 needs Python >= 3.12 and this machine has none (looked on PATH, "
                    "under `pyenv root`/versions and ~/.local/share/uv/python): install one, e.g. "
                    "`pyenv install 3.12`")
    exe = min(found, key=lambda e: found[e])
    return exe, ".".join(map(str, found[exe]))


def server_env(pybin: str, port: int, db: str = "maindb") -> dict:
    env = {"PATH": f"{pybin}:{VENV_BIN}:/usr/bin:/bin", "UV_NATIVE_TLS": "1", "SSL_CERT_FILE": CA,
           "DATABASE_URI": f"postgresql://postgres@127.0.0.1:{port}/{db}"}
    for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    return env


class Setup:
    """A config dir with a stateDir, and the mcp-hub CLI against it."""

    def __init__(self, tmp: pathlib.Path):
        os.chmod(tmp, 0o755)
        self.tmp = tmp
        self.state = tmp / "state"
        self.state.mkdir(mode=0o755)
        self.proxy = {"options": {"stateDir": str(self.state), "authTokens": [TOKEN]}}
        self.cfg = tmp / "config.json"
        self.write({})

    def write(self, servers: dict):
        self.cfg.write_text(json.dumps({"mcpProxy": self.proxy, "mcpServers": servers}, indent=2))

    def cli(self, *args, timeout=120):
        start = time.time()
        p = subprocess.run([hub_binary(), "--config", str(self.cfg), *args], capture_output=True, text=True,
                           timeout=timeout)
        print(f"\n$ mcp-hub {' '.join(args)}  [{time.time() - start:.1f}s, exit {p.returncode}]\n"
              f"{p.stdout}{p.stderr}")
        return p.returncode, p.stdout + p.stderr

    def hub(self) -> Hub:
        # Hub rewrites config.json with the same mcpProxy and no servers of its
        # own: conf.d/*.json beside it (what `add` wrote) is merged in.
        return Hub({}, proxy=self.proxy, tmp=self.tmp)


@pytest.fixture(scope="module")
def python():
    return python_312()


@pytest.fixture(scope="module")
def installed(tmp_path_factory, postgres, python):
    """`mcp-hub add pg … -- uvx postgres-mcp --access-mode=restricted`, then
    `mcp-hub install pg`; the record of what was installed."""
    exe, _ = python
    s = Setup(tmp_path_factory.mktemp("pg"))
    env = server_env(os.path.dirname(exe), postgres)
    args = ["add", "pg", "--install-python", ">=3.12"]
    for o in OVERRIDES:
        args += ["--override", o]
    for k, v in env.items():
        args += ["--env", f"{k}={v}"]
    # No sandbox grant for the interpreter: the hub binds the directory the
    # installed script's `#!` Python lives in, read-only and executable.
    args += ["--no-test", "--", "uvx", "postgres-mcp", "--access-mode=restricted"]
    code, out = s.cli(*args)
    assert code == 0, out
    entry = json.loads((s.tmp / "conf.d" / "pg.json").read_text())["mcpServers"]["pg"]
    assert entry["install"] == {"python": ">=3.12", "overrides": OVERRIDES}, entry
    assert entry["command"] == "uvx" and entry["args"] == ["postgres-mcp", "--access-mode=restricted"], entry

    code, out = s.cli("check")
    assert code == 0, out
    # The newest Python >= 3.12 on the server's PATH (the bin dir of the one found).
    picked = re.search(r"pg: install: python (3\.(1[2-9]|[2-9]\d)\.\d+) at (\S+) ", out)
    assert picked and "overrides pglast==7.22, mcp<2" in out, out
    assert os.path.dirname(picked.group(3)) == os.path.dirname(exe), out

    start = time.time()
    code, out = s.cli("install", "pg", timeout=INSTALL_TIMEOUT)
    assert code == 0, out
    print(f"install took {time.time() - start:.0f}s")
    assert "pg: installed postgres-mcp 0.3.0" in out, out
    with open(s.state / "pg" / "pkg" / ".mcp-hub-install.json") as f:
        rec = json.load(f)["current"]
    assert "pglast==7.22" in rec["pinned"] and "postgres-mcp==0.3.0" in rec["pinned"], rec
    mcp = next(p for p in rec["pinned"] if p.lower().startswith("mcp=="))
    assert mcp.split("==")[1].startswith("1."), rec
    assert rec["python"] == f"{picked.group(1)} {picked.group(3)}", rec
    s.record = rec
    return s


@pytest.fixture(scope="module")
def pg_hub(installed):
    h = installed.hub()
    yield h
    h.stop()
    print("\n".join(h.logs[-40:]))


async def exercise(call, postgres_port):
    """The five tools and a refused DELETE, through `call(name, args)`."""
    r = await call("list_schemas", {})
    assert not r.is_error and "'public'" in text_of(r), text_of(r)
    r = await call("list_objects", {"schema_name": "public"})
    assert not r.is_error and "'notes'" in text_of(r), text_of(r)
    r = await call("execute_sql", {"sql": "SELECT id, name FROM notes ORDER BY id"})
    assert not r.is_error and "main-first" in text_of(r) and "main-second" in text_of(r), text_of(r)
    r = await call("explain_query", {"sql": "SELECT name FROM notes WHERE id = 1"})
    assert not r.is_error and "Scan" in text_of(r), text_of(r)
    r = await call("analyze_db_health", {"health_type": "all"})
    assert not r.is_error and text_of(r) and not text_of(r).startswith("Error"), text_of(r)
    # Restricted mode: a write is refused, as a tool error, and changes nothing.
    r = await call("execute_sql", {"sql": "DELETE FROM notes WHERE id = 1"})
    assert r.is_error or text_of(r).startswith("Error"), text_of(r)
    r = await call("execute_sql", {"sql": "SELECT count(*) AS n FROM notes WHERE id = 1"})
    assert "'n': 1" in text_of(r), text_of(r)
    n = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres_port), "-U", "postgres", "-d", "maindb",
                        "-tAc", "SELECT count(*) FROM notes"], capture_output=True, text=True, check=True)
    assert n.stdout.strip() == "2", n.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_postgres_mcp_through_the_hub_2025(pg_hub, postgres, transport):
    async def go():
        async with connect(pg_hub, "pg", transport) as s:
            assert s.init_result.protocol_version.startswith("2025-"), s.init_result.protocol_version
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"list_schemas", "list_objects", "execute_sql", "explain_query", "analyze_db_health"} <= names
            await exercise(s.call_tool, postgres)
    run(go())


def test_postgres_mcp_through_the_hub_2026(pg_hub, postgres):
    async def go():
        async with client(pg_hub, "pg", "2026-07-28") as c:
            assert c.protocol_version == "2026-07-28", c.protocol_version
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"list_schemas", "execute_sql", "analyze_db_health"} <= names
            await exercise(c.call_tool, postgres)
    run(go())


def test_the_server_ran_in_the_sandbox(pg_hub, installed):
    import urllib.request
    req = urllib.request.Request(pg_hub.url("/status"), headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        st = next(s for s in json.load(r)["servers"] if s["name"] == "pg")
    # The default sandbox, the host's network (PostgreSQL on 127.0.0.1), no
    # grant for the Python outside /usr.
    assert st["state"] == "ready" and st["sandbox"]["enabled"] is True, st
    assert st["sandbox"]["network"] == "host", st
    pkg = st["sandbox"]["package"]
    assert pkg["version"] == "0.3.0" and "pglast==7.22" in pkg["pinned"], st
    assert pkg["overrides"] == OVERRIDES and pkg["python"] == installed.record["python"], st


def test_without_the_overrides_the_install_fails_with_the_resolver(tmp_path, postgres, python):
    exe, _ = python
    s = Setup(tmp_path)
    s.write({"pg": {"command": "uvx", "args": ["postgres-mcp", "--access-mode=restricted"],
                    "env": server_env(os.path.dirname(exe), postgres), "install": {"python": ">=3.12"}}})
    code, out = s.cli("install", "pg", timeout=INSTALL_TIMEOUT)
    assert code != 0, out
    # uv's explanation: every release pins a pglast the index does not carry.
    assert "a dependency conflict" in out and "install.overrides" in out, out
    assert "No solution found" in out, out
    assert "there is no version of pglast==7.2.0" in re.sub(r"\s+", " ", out), out
    # And the package manager's last 20 stderr lines.
    assert "its last stderr lines:" in out, out
    tail = [l for l in out.split("its last stderr lines:", 1)[1].splitlines() if l.strip()]
    assert 0 < len(tail) <= 20, tail
    assert not (s.state / "pg" / "pkg" / ".mcp-hub-install.json").exists()


def test_no_python_312_on_path_fails_check_naming_it(tmp_path, postgres):
    s = Setup(tmp_path)
    # /usr/bin:/bin: on Debian 12, python3.11 only. Where a newer Python lives
    # there too, a directory of links to the older ones stands in for it.
    path = "/usr/bin:/bin"
    pythons = [p for p in glob.glob("/usr/bin/python3*") + glob.glob("/bin/python3*") if interpreter(p)]
    if any(interpreter(p)[1] >= (3, 12) for p in pythons):
        links = tmp_path / "bin"
        links.mkdir()
        for p in pythons:
            if interpreter(p)[1] < (3, 12) and not (links / os.path.basename(p)).exists():
                (links / os.path.basename(p)).symlink_to(p)
        path = str(links)
    env = {**server_env("/usr/bin", postgres), "PATH": path}
    s.write({"pg": {"command": str(HERE / ".venv" / "bin" / "uvx"),
                    "args": ["postgres-mcp", "--access-mode=restricted"],
                    "env": env, "install": {"python": ">=3.12", "overrides": OVERRIDES}}})
    code, out = s.cli("check")
    assert code != 0, out
    assert "mcpServers.pg.install.python: no Python >=3.12 on this machine" in out, out
    assert "install one or set install.python to a path" in out, out


def test_postgres_mcp_as_an_sse_upstream(installed, postgres, tmp_path):
    """postgres-mcp's own SSE transport with its 0.3.0 flags, from the venv the
    hub installed, as a `url` upstream: /pgsse/mcp reaches it."""
    program = installed.state / "pg" / "pkg" / installed.record["program"]
    port = free_port()
    sse = Proc("postgres-mcp-sse", [str(program), "--transport", "sse", "--sse-host", "127.0.0.1",
                                    "--sse-port", str(port), "--access-mode=restricted"], port, tmp_path,
               env={"DATABASE_URI": f"postgresql://postgres@127.0.0.1:{postgres}/maindb"})
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    s = Setup(hub_dir)
    code, out = s.cli("add", "pgsse", "--url", f"http://127.0.0.1:{port}/sse", "--no-test")
    assert code == 0, out
    entry = json.loads((hub_dir / "conf.d" / "pgsse.json").read_text())["mcpServers"]["pgsse"]
    assert entry == {"url": f"http://127.0.0.1:{port}/sse", "transportType": "sse"}, entry
    h = s.hub()
    try:
        async def go():
            async with connect(h, "pgsse", "streamable-http") as s:
                r = await s.call_tool("list_schemas", {})
                assert not r.is_error and "'public'" in text_of(r), text_of(r)
                r = await s.call_tool("execute_sql", {"sql": "SELECT name FROM notes ORDER BY id"})
                assert "main-first" in text_of(r) and "main-second" in text_of(r), text_of(r)
            async with client(h, "pgsse", "2026-07-28") as c:
                r = await c.call_tool("execute_sql", {"sql": "SELECT name FROM notes WHERE id = 2"})
                assert "main-second" in text_of(r), text_of(r)
        run(go())
    finally:
        h.stop()
        sse.stop()
