"""A package runner's install options against PyPI, through `mcp-hub install`:
a conflict between the package's dependencies and what the server asks for
fails with the resolver's own explanation and how to settle it; an
`install.overrides` entry settles it, and the version it forces is the one the
installed lock pins (record, `mcp-hub show`). The venv is made with the
interpreter `install.python` picked from the machine (never a download).

python-dotenv[cli] 1.0.1 requires click>=5; the server also asks for click<5;
the override click==8.0.4 wins over both."""

import json
import os
import subprocess

import pytest

from conftest import HERE, TOKEN, Hub, hub_binary

CA = "/etc/ssl/certs/ca-certificates.crt"
UVX = str(HERE / ".venv" / "bin" / "uvx")


def server(overrides):
    env = {"PATH": "/usr/bin:/bin", "UV_NATIVE_TLS": "1", "SSL_CERT_FILE": CA}
    for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    install = {"python": ">=3.11"}
    if overrides:
        install["overrides"] = overrides
    return {"command": UVX, "args": ["--from", "python-dotenv[cli]==1.0.1", "--with", "click<5", "dotenv"],
            "env": env, "install": install}


@pytest.fixture
def setup(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "config.json"

    def write(overrides):
        cfg.write_text(json.dumps({"mcpProxy": {"options": {"stateDir": str(state)}},
                                   "mcpServers": {"dotenv": server(overrides)}}))

    def cli(*args):
        p = subprocess.run([hub_binary(), "--config", str(cfg), *args], capture_output=True, text=True,
                           timeout=600)
        return p.returncode, p.stdout + p.stderr

    return write, cli, state


def test_an_override_settles_a_conflict_and_shows_in_the_lock(setup):
    write, cli, state = setup
    write([])
    code, out = cli("check")
    assert code == 0, out
    assert "dotenv: install: python 3.11." in out and "/usr/bin/python3.11" in out, out

    # Without the override: the resolver's message, and what to do about it.
    code, out = cli("install", "dotenv")
    assert code != 0, out
    assert "No solution found" in out, out
    assert "click>=5" in out, out
    assert "install.overrides" in out, out
    assert not (state / "dotenv" / "pkg" / ".mcp-hub-install.json").exists()

    # With it: installed, and the lock pins the forced version.
    write(["click==8.0.4"])
    code, out = cli("install", "dotenv")
    assert code == 0, out
    assert "dotenv: installed python-dotenv 1.0.1" in out, out
    with open(state / "dotenv" / "pkg" / ".mcp-hub-install.json") as f:
        rec = json.load(f)["current"]
    assert "click==8.0.4" in rec["pinned"], rec
    assert "python-dotenv==1.0.1" in rec["pinned"], rec
    assert rec["overrides"] == ["click==8.0.4"], rec
    assert rec["python"].startswith("3.11.") and rec["python"].endswith("/usr/bin/python3.11"), rec
    lock = (state / "dotenv" / "pkg" / rec["lockfile"]).read_text()
    assert "click==8.0.4" in lock, lock
    # The venv is the machine's Python, not a downloaded one.
    assert not (state / "dotenv" / "pkg" / rec["dir"] / "python").exists()

    code, out = cli("show", "dotenv", "--json")
    assert code == 0, out
    pkg = json.loads(out)["package"]
    assert "click==8.0.4" in pkg["pinned"] and pkg["python"] == rec["python"], pkg

    # /status shows the same, from the record (nothing is started for it).
    hub = Hub({"dotenv": server(["click==8.0.4"])}, proxy={"options": {"stateDir": str(state)}},
              tmp=state.parent)
    try:
        import urllib.request
        req = urllib.request.Request(hub.url("/status"), headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            st = next(s for s in json.load(r)["servers"] if s["name"] == "dotenv")
        assert "click==8.0.4" in st["sandbox"]["package"]["pinned"], st
    finally:
        hub.stop()


def test_an_npm_override_pins_a_dependency(tmp_path):
    """mkdirp 0.5.6 depends on minimist ^1.2.6 (npm resolves the newest 1.2.x);
    the override makes it 1.2.6, in the generated package.json and the lock."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "config.json"
    env = {"npm_config_cafile": CA, "NODE_EXTRA_CA_CERTS": CA, "npm_config_update_notifier": "false"}
    for k in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if os.environ.get(k):
            env[k] = os.environ[k]

    def install(overrides):
        srv = {"command": "npx", "args": ["-y", "mkdirp@0.5.6"], "env": env}
        if overrides:
            srv["install"] = {"overrides": overrides}
        cfg.write_text(json.dumps({"mcpProxy": {"options": {"stateDir": str(state)}},
                                   "mcpServers": {"mk": srv}}))
        p = subprocess.run([hub_binary(), "--config", str(cfg), "install", "mk"], capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        with open(state / "mk" / "pkg" / ".mcp-hub-install.json") as f:
            return json.load(f)["current"]

    plain = install([])
    assert "mkdirp@0.5.6" in plain["pinned"], plain
    newest = next(p for p in plain["pinned"] if p.startswith("minimist@"))
    assert newest != "minimist@1.2.6", plain
    forced = install(["minimist@1.2.6"])
    assert "minimist@1.2.6" in forced["pinned"], forced
    manifest = json.loads((state / "mk" / "pkg" / forced["dir"] / "package.json").read_text())
    assert manifest["overrides"] == {"minimist": "1.2.6"}, manifest
