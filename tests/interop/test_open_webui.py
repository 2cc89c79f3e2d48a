"""Open WebUI 0.12.4 (PyPI open-webui, in a venv of its own: tests/interop/.venv-open-webui)
end to end with the hub, offline on loopback.

What `mcp-hub client-config open-webui` writes is imported the way Open WebUI's
connection form does it (Admin Settings → External Tools → + → Import, then
Save), verified with the call behind the form's verify button, its tools listed
through Open WebUI, and one tool run through Open WebUI's own chat pipeline:
a stand-in OpenAI-compatible model on loopback answers the first request with
a call to the `echo` tool and the second with text, and the second request
must carry the tool's real output (Open WebUI → hub → server-everything and
back). Both connection types (MCP streamable HTTP, OpenAPI), a server and a
group, the key written with --with-token or pasted after the import.
`--write --open-webui-url` writes the same connections through the admin API.

The route and field names below are Open WebUI 0.12.4's own: its
routers/configs.py (/api/v1/configs/tool_servers, …/verify), routers/tools.py
(/api/v1/tools/, /api/v1/tools/id/server:mcp:<id>/specs), main.py
(/api/chat/completions) and its AddToolServerModal.svelte (Import, Save)."""

import json
import os
import re
import pathlib
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import HERE, NODE_MODULES, TOKEN, Hub, free_port, hub_binary, node22
from test_python_sdk import connect as sdk_connect, run

VENV = HERE / ".venv-open-webui"
OPEN_WEBUI = VENV / "bin" / "open-webui"
EVERYTHING = str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js")
ADMIN = {"name": "Admin", "email": "admin@example.com", "password": "owui-Admin-pass-1"}
# Its first start compiles every module of a several-GB install on a busy machine.
START_TIMEOUT = 600


class StandIn:
    """An OpenAI-compatible model on loopback: with tools offered and no tool
    result yet it calls the tool whose name ends in `echo` with the nonce from
    the user's message; otherwise it answers with text. It keeps every request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, obj):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self.reply(200, {"object": "list", "data": [
                        {"id": "standin", "object": "model", "owned_by": "mcp-hub-test"}]})
                self.reply(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer.lock:
                    outer.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    return self.reply(404, {"error": "not found"})
                msgs = body.get("messages", [])
                tools = [t["function"]["name"] for t in body.get("tools", [])]
                user = next((m.get("content") for m in reversed(msgs) if m.get("role") == "user"), "") or ""
                nonce = str(user).rsplit("NONCE:", 1)[-1].strip() if "NONCE:" in str(user) else "none"
                echo = [t for t in tools if t.endswith("echo")]
                if echo and not any(m.get("role") == "tool" for m in msgs):
                    delta = {"role": "assistant", "tool_calls": [{
                        "index": 0, "id": f"call_{nonce}", "type": "function",
                        "function": {"name": echo[0], "arguments": json.dumps({"message": nonce})}}]}
                    finish = "tool_calls"
                else:
                    delta, finish = {"role": "assistant", "content": "The tool answered."}, "stop"
                if not body.get("stream"):
                    msg = {k: v for k, v in delta.items()}
                    if "tool_calls" in msg:
                        msg["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in msg["tool_calls"]]
                    return self.reply(200, {"id": "c", "object": "chat.completion", "model": "standin",
                                            "choices": [{"index": 0, "message": msg, "finish_reason": finish}]})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for d, f in ((delta, None), ({}, finish)):
                    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "standin",
                             "choices": [{"index": 0, "delta": d, "finish_reason": f}]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def with_nonce(self, nonce: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests
                    if any(f"NONCE:{nonce}" in str(m.get("content")) for m in r.get("messages", []))]

    def stop(self):
        self.server.shutdown()


def http(method: str, url: str, body=None, token: str | None = None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


class OpenWebUI:
    def __init__(self, tmp: pathlib.Path, model_url: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "open-webui.log"
        dead = "http://127.0.0.1:9"  # nothing listens: any request that would leave the machine fails at once
        env = {
            **os.environ,
            "DATA_DIR": str(tmp / "data"),
            "WEBUI_SECRET_KEY": "owui-interop-secret",
            "OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "ENABLE_OLLAMA_API": "false",
            "ENABLE_OPENAI_API": "true",
            "OPENAI_API_BASE_URLS": model_url,
            "OPENAI_API_KEYS": "sk-stand-in",
            # No local embedding model to download: embeddings would go to the stand-in.
            "RAG_EMBEDDING_ENGINE": "openai",
            "RAG_OPENAI_API_BASE_URL": model_url,
            "RAG_OPENAI_API_KEY": "sk-stand-in",
            "ENABLE_API_KEYS": "true",
            "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        }
        (tmp / "data").mkdir()
        self.proc = subprocess.Popen([str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=tmp,
                                     start_new_session=True)
        started = time.time()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"open-webui exited: {self.log.read_text()[-3000:]}")
            try:
                if http("GET", self.base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() - started > START_TIMEOUT:
                self.stop()
                raise RuntimeError(f"open-webui did not answer in {START_TIMEOUT}s: {self.log.read_text()[-3000:]}")
            time.sleep(1)
        self.start_seconds = time.time() - started
        status, me = http("POST", self.base + "/api/v1/auths/signup", ADMIN)
        assert status == 200 and me["role"] == "admin", (status, me)
        self.token = me["token"]

    def api(self, method, path, body=None, token=None):
        return http(method, self.base + path, body, token or self.token)

    def connections(self) -> list[dict]:
        status, d = self.api("GET", "/api/v1/configs/tool_servers")
        assert status == 200, d
        return d["TOOL_SERVER_CONNECTIONS"]

    def save(self, connections: list[dict]):
        status, d = self.api("POST", "/api/v1/configs/tool_servers", {"TOOL_SERVER_CONNECTIONS": connections})
        assert status == 200, d
        return d["TOOL_SERVER_CONNECTIONS"]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def ui_import(path: pathlib.Path, pasted_key: str | None = None) -> dict:
    """The connection Open WebUI 0.12.4's form saves after Import of `path`:
    its importHandler (the first element of an array; fields that are set
    replace the form's defaults) then its submitHandler (the object it hands
    to the settings page, which appends it and POSTs the whole list).
    `pasted_key`: what the admin types into the Key field after the import."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        assert data, f"{path}: an empty array, which Import refuses"
        data = data[0]
    form = {"type": "openapi", "url": "", "spec_type": "url", "spec": "", "path": "openapi.json",
            "auth_type": "bearer", "forward_cookies": False, "headers": None, "key": "",
            "id": "", "name": "", "description": "", "enable": True, "access_grants": [],
            "function_name_filter_list": ""}
    for k in ("type", "url", "spec_type", "spec", "path", "auth_type", "key"):
        if data.get(k):
            form[k] = data[k]
    form["forward_cookies"] = data.get("forward_cookies", False)
    if data.get("headers"):
        form["headers"] = data["headers"]
    info = data.get("info") or {}
    form.update(id=info.get("id", ""), name=info.get("name", ""), description=info.get("description", ""))
    if data.get("config"):
        form["enable"] = data["config"].get("enable", True)
        form["access_grants"] = data["config"].get("access_grants", [])
    if pasted_key is not None:
        form["key"] = pasted_key
    if form["type"] != "mcp":
        form["url"] = form["url"].rstrip("/")
    assert ":" not in form["id"] and "|" not in form["id"], form["id"]
    conn = {"type": form["type"], "url": form["url"], "spec_type": form["spec_type"], "spec": form["spec"],
            "path": form["path"], "auth_type": form["auth_type"], "key": form["key"],
            "config": {"enable": form["enable"], "function_name_filter_list": form["function_name_filter_list"],
                       "access_grants": form["access_grants"]},
            "info": {"id": form["id"], "name": form["name"], "description": form["description"]}}
    if form["type"] in ("", "openapi"):
        conn["forward_cookies"] = form["forward_cookies"]
    if form["headers"]:
        conn["headers"] = form["headers"]
    return conn


def client_config(hub: Hub, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([hub_binary(), "--config", str(hub.config), "client-config", "open-webui",
                           "--url-base", hub.base, *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def hub_lists(hub: Hub, route: str) -> tuple[list[str], list[str]]:
    """The route's tool and prompt names, asked of the hub directly over MCP."""
    async def go():
        async with sdk_connect(hub, route, "streamable-http", token=TOKEN) as s:
            tools = [t.name for t in (await s.list_tools()).tools]
            try:
                prompts = [p.name for p in (await s.list_prompts()).prompts]
            except Exception:
                prompts = []
            return tools, prompts
    return run(go())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not OPEN_WEBUI.exists():
        pytest.fail("Open WebUI is not installed in tests/interop/.venv-open-webui (scripts/test installs it)")
    tmp = tmp_path_factory.mktemp("owui")
    model = StandIn()
    server = {"command": node22(), "args": [EVERYTHING, "stdio"]}
    config = tmp / "config.json"
    config.write_text(json.dumps({
        "mcpProxy": {"options": {"authTokens": [TOKEN]}},
        "mcpServers": {
            "everything": server,
            "everything-rp": {**server, "options": {"openapi": {"resources": True, "prompts": True}}},
        },
        "groups": {"all": {"servers": ["everything"]}},
    }, indent=2))
    hub = _start(config)
    owui = OpenWebUI(tmp, f"http://127.0.0.1:{model.port}/v1")
    print(f"\nOpen WebUI answered {owui.start_seconds:.0f} s after its start")
    files = {}
    for mode, extra in (("token", ["--with-token"]), ("paste", [])):
        out = tmp / f"files-{mode}"
        r = client_config(hub, "--write", str(out), "--openapi", *extra)
        assert r.returncode == 0, r.stderr
        files[mode] = out
    yield {"hub": hub, "owui": owui, "model": model, "files": files, "tmp": tmp}
    owui.stop()
    hub.stop()
    model.stop()


def _start(config: pathlib.Path) -> Hub:
    """conftest's Hub, on a config with groups (Hub writes servers and proxy only)."""
    h = Hub.__new__(Hub)
    h.config = config
    h.logs = []
    h.proc = subprocess.Popen([hub_binary(), "--config", str(config), "serve", "--listen", "127.0.0.1:0"],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    found = threading.Event()
    h.base = ""

    def pump():
        for line in h.proc.stderr:
            h.logs.append(line.rstrip())
            m = re.search(r"listening on (\S+)", line)
            if m and not found.is_set():
                h.base = f"http://{m.group(1)}"
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(20):
        h.stop()
        raise RuntimeError("mcp-hub did not start:\n" + "\n".join(h.logs))
    return h


CASES = [(target, kind, mode) for target in ("server", "group") for kind in ("mcp", "openapi")
         for mode in ("token", "paste")]


def file_for(files: pathlib.Path, target: str, kind: str, name: str = "everything") -> pathlib.Path:
    stem = "all" if target == "group" else name
    sub = files / "g" if target == "group" else files
    return sub / (f"{stem}.openapi.json" if kind == "openapi" else f"{stem}.json")


def tool_id(conn: dict) -> str:
    """The id Open WebUI's tool list and chat requests name a connection by."""
    return f"server:mcp:{conn['info']['id']}" if conn["type"] == "mcp" else f"server:{conn['info']['id']}"


def verify(owui: OpenWebUI, conn: dict) -> dict:
    status, d = owui.api("POST", "/api/v1/configs/tool_servers/verify", conn)
    assert status == 200, f"verify {conn['url']}: {status} {d}"
    return d


def offered_and_answered(setup, conn: dict) -> list[str]:
    """Runs `echo` through Open WebUI's chat pipeline with `conn` selected;
    returns the tool names Open WebUI offered the model."""
    owui, model = setup["owui"], setup["model"]
    nonce = uuid.uuid4().hex[:12]
    status, d = owui.api("POST", "/api/chat/completions", {
        "model": "standin", "stream": True, "parent_id": None, "id": str(uuid.uuid4()),
        "messages": [{"role": "user", "content": f"Echo this back. NONCE:{nonce}"}],
        "tool_ids": [tool_id(conn)],
    })
    assert status == 200, d
    deadline = time.time() + 90
    while len(model.with_nonce(nonce)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    reqs = model.with_nonce(nonce)
    assert len(reqs) >= 2, f"the model was asked {len(reqs)} time(s): no second request after the tool call " \
                           f"({conn['url']}); Open WebUI's log:\n{setup['owui'].log.read_text()[-3000:]}"
    tool_msgs = [m for m in reqs[1]["messages"] if m.get("role") == "tool"]
    assert tool_msgs and tool_msgs[-1]["tool_call_id"] == f"call_{nonce}", reqs[1]["messages"][-3:]
    # server-everything's echo answers "Echo: <message>": the real output came back.
    assert f"Echo: {nonce}" in str(tool_msgs[-1]["content"]), tool_msgs[-1]
    return [t["function"]["name"] for t in reqs[0].get("tools", [])]


@pytest.mark.parametrize("target,kind,mode", CASES)
def test_import_verify_list_and_run(setup, target, kind, mode):
    hub, owui = setup["hub"], setup["owui"]
    route = "g/all" if target == "group" else "everything"
    path = file_for(setup["files"][mode], target, kind)
    written = json.loads(path.read_text())
    assert isinstance(written, list) and len(written) == 1, written
    assert written[0]["key"] == (TOKEN if mode == "token" else ""), written[0]
    owui.save([])
    conn = ui_import(path, pasted_key=TOKEN if mode == "paste" else None)
    owui.save(owui.connections() + [conn])
    [stored] = owui.connections()
    assert stored["url"] == written[0]["url"] and stored["key"] == TOKEN, stored

    tools, _ = hub_lists(hub, route)
    assert "echo" in tools or "everything__echo" in tools, tools
    d = verify(owui, stored)
    if kind == "mcp":
        assert sorted(s["name"] for s in d["specs"]) == sorted(tools)
    else:
        ops = [op["operationId"] for p in d["paths"].values() for op in p.values()]
        assert sorted(ops) == sorted(tools)
    # The verify button fails on a wrong key: it reached the hub, which checks it.
    status, _ = owui.api("POST", "/api/v1/configs/tool_servers/verify", {**stored, "key": "wrong"})
    assert status == 400

    status, listed = owui.api("GET", "/api/v1/tools/")
    assert status == 200 and tool_id(stored) in [t["id"] for t in listed], listed
    if kind == "mcp":
        status, specs = owui.api("GET", f"/api/v1/tools/id/{tool_id(stored)}/specs")
        assert status == 200, specs
        assert sorted(s["name"] for s in specs["specs"]) == sorted(tools)

    offered = offered_and_answered(setup, stored)
    # Exactly the route's tools: MCP tools get the connection's id in front.
    expected = [f"{stored['info']['id']}_{t}" for t in tools] if kind == "mcp" else tools
    assert sorted(offered) == sorted(expected)


def test_openapi_resources_and_prompts_only_when_opted_in(setup):
    hub, owui = setup["hub"], setup["owui"]
    tools, prompts = hub_lists(hub, "everything-rp")
    assert prompts, "server-everything lists prompts"
    extra = {"list_resources", "read_resource", "list_prompts"} | {f"prompt_{p}" for p in prompts}
    files = setup["files"]["token"]
    for kind, expected in (("openapi", set(tools) | extra), ("mcp", {f"everything-rp_{t}" for t in tools})):
        owui.save([])
        conn = ui_import(file_for(files, "server", kind, "everything-rp"))
        [stored] = owui.save([conn])
        offered = offered_and_answered(setup, stored)
        assert set(offered) == expected, (kind, sorted(set(offered) ^ expected))
    # Without the opt-in (the default) the OpenAPI view is tools only.
    owui.save([])
    [stored] = owui.save([ui_import(file_for(files, "server", "openapi"))])
    offered = set(offered_and_answered(setup, stored))
    assert not offered & extra and offered == set(hub_lists(hub, "everything")[0])


def test_write_into_open_webui(setup, tmp_path):
    hub, owui = setup["hub"], setup["owui"]
    status, k = owui.api("POST", "/api/v1/auths/api_key")
    assert status == 200 and k["api_key"].startswith("sk-"), k
    env = {"OPEN_WEBUI_API_KEY": k["api_key"], "XDG_STATE_HOME": str(tmp_path / "state")}
    backups = tmp_path / "state" / "mcp-hub" / "open-webui"
    foreign = {"type": "openapi", "url": "http://127.0.0.1:9/elsewhere", "path": "openapi.json",
               "auth_type": "bearer", "key": "foreign-key", "config": {"enable": False},
               "info": {"id": "elsewhere", "name": "elsewhere", "description": "not the hub's"}}
    [foreign_stored] = owui.save([foreign])

    args = ["--write", "--openapi", "--open-webui-url", owui.base]
    r = client_config(hub, *args, env=env)
    assert r.returncode == 0, r.stderr
    [backup] = list(backups.iterdir())
    assert f"backup {backup}" in r.stdout, r.stdout
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert json.loads(backup.read_text()) == {"TOOL_SERVER_CONNECTIONS": [foreign_stored]}
    conns = owui.connections()
    assert conns[0] == foreign_stored, "the foreign connection was changed"
    hubs = {c["url"]: c for c in conns[1:]}
    expected_urls = {f"{hub.base}/{n}{s}" for n in ("everything", "everything-rp", "g/all") for s in ("/mcp", "")}
    assert set(hubs) == expected_urls, sorted(hubs)
    assert all(c["key"] == "" for c in hubs.values())
    assert "paste the hub's token" in r.stderr, r.stderr

    # The admin pastes the key into each of the hub's connections (the form's Save).
    owui.save([foreign_stored] + [{**c, "key": TOKEN} for c in conns[1:]])
    before = owui.connections()
    r = client_config(hub, *args, env=env)
    assert r.returncode == 0, r.stderr
    assert "up to date: nothing written" in r.stdout, r.stdout
    assert owui.connections() == before, "a second run changed the connections (the pasted keys?)"
    assert len(list(backups.iterdir())) == 1, "a run that changed nothing wrote a backup"
    # --with-token writes the same key: still nothing to change.
    r = client_config(hub, *args, "--with-token", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr

    # What it wrote works: verify, and run echo through the chat, over both types.
    for url in (f"{hub.base}/everything/mcp", f"{hub.base}/g/all"):
        conn = next(c for c in owui.connections() if c["url"] == url)
        verify(owui, conn)
        assert offered_and_answered(setup, conn)

    # Clear errors, naming the URL.
    r = client_config(hub, *args, env={**env, "OPEN_WEBUI_API_KEY": "sk-wrong"})
    assert r.returncode != 0 and owui.base in r.stderr and "401" in r.stderr, r.stderr
    # A user's key (the admin adds the user; sign-up is closed after the first).
    cred = {"email": "user@example.com", "password": "owui-User-pass-1"}
    status, added = owui.api("POST", "/api/v1/auths/add", {"name": "U", "role": "user", **cred})
    assert status == 200, added
    status, user = http("POST", owui.base + "/api/v1/auths/signin", cred)
    assert status == 200 and user["role"] == "user", user
    r = client_config(hub, *args, env={**env, "OPEN_WEBUI_API_KEY": user["token"]})
    assert r.returncode != 0 and "not an admin" in r.stderr and owui.base in r.stderr, r.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    r = client_config(hub, *args[:-1], dead, env=env)
    assert r.returncode != 0 and f"cannot reach Open WebUI at {dead}" in r.stderr, r.stderr
    assert owui.connections() == before
