"""The hub's OpenAPI facade beside MCPO (PyPI mcpo 0.0.20, the tool it replaces),
both in front of the same @modelcontextprotocol/server-everything, and driven by
an OpenAPI client that works the way Open WebUI's tool-server integration does.

MCPO runs from a venv of its own (tests/interop/.venv-mcpo, from
requirements-mcpo.txt): it needs mcp 1.x, the other interop tests mcp 2.x."""

import copy
import json
import pathlib
import urllib.error
import urllib.parse
import urllib.request

import pytest
from openapi_spec_validator import validate

from conftest import HERE, NODE_MODULES, Hub, Proc, free_port, node22

KEY = "openapi-interop-key"
MCPO = HERE / ".venv-mcpo" / "bin" / "mcpo"
EVERYTHING = str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js")

# Tools that server-everything lists only to a client that declared sampling or
# elicitation: the hub's shared upstream declares them for its MCP clients,
# MCPO's client and the hub's per-client facade session do not.
CAPABILITY_TOOLS = {"trigger-elicitation-request", "trigger-sampling-request"}

# Arguments a model would give, for the tools whose defaults are slow or reach
# the internet (gzip-file-as-resource fetches a GitHub URL by default).
ARGS = {
    "echo": {"message": "hello from the facade test"},
    "get-sum": {"a": 2, "b": 3},
    "get-annotated-message": {"messageType": "error", "includeImage": True},
    "get-structured-content": {"location": "Chicago"},
    "get-resource-reference": {"resourceType": "Text", "resourceId": 1},
    "get-resource-links": {"count": 2},
    "gzip-file-as-resource": {"name": "hello.txt.gz", "data": "data:text/plain;base64,aGVsbG8=",
                              "outputType": "resource"},
    "trigger-long-running-operation": {"duration": 0.3, "steps": 2},
    "simulate-research-query": {"topic": "tides"},
    "trigger-sampling-request": {"prompt": "say hi", "maxTokens": 5},
    "trigger-elicitation-request": {},
    "prompt_resource-prompt": {"resourceType": "Text", "resourceId": "1"},
}

# Operations that cannot succeed behind an OpenAPI call, and say so: the first
# needs MCP tasks, the other two ask the client a question (sampling,
# elicitation) that no OpenAPI caller can answer.
REFUSED = {"simulate-research-query", "trigger-sampling-request", "trigger-elicitation-request"}


def http(method: str, url: str, body=None, token: str | None = KEY, raw: bytes | None = None):
    """One request; returns (status, parsed JSON body or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text, headers = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), headers
    except json.JSONDecodeError:
        return status, text, headers


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    if not MCPO.exists():
        pytest.fail("mcpo is not installed in tests/interop/.venv-mcpo (scripts/test installs it)")
    tmp = tmp_path_factory.mktemp("openapi")
    server = {"command": node22(), "args": [EVERYTHING, "stdio"]}
    hub = Hub({
        "everything": server,
        "everything-pc": {**server, "session": "per-client"},
        "everything-mcpo": {**server, "options": {"openapi": {"operationIds": "mcpo"}}},
        "everything-full": {**server, "options": {"openapi": {"resources": True, "prompts": True}}},
    }, proxy={"options": {"authTokens": [KEY], "logEnabled": True}}, tmp=tmp)
    port = free_port()
    mcpo = Proc("mcpo", [str(MCPO), "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY,
                         "--", node22(), EVERYTHING, "stdio"], port, tmp)
    yield hub, f"http://127.0.0.1:{port}"
    mcpo.stop()
    hub.stop()


def spec(url: str) -> dict:
    status, doc, _ = http("GET", url + "/openapi.json")
    assert status == 200, doc
    return doc


def tool_ops(doc: dict, prefix: str) -> dict:
    """{tool name: operation} for every tool operation under `prefix`."""
    out = {}
    for path, methods in doc["paths"].items():
        if path.startswith(prefix):
            out[urllib.parse.unquote(path[len(prefix):])] = methods["post"]
    return out


def test_both_specs_validate_and_list_the_same_tools(side_by_side):
    hub, mcpo = side_by_side
    ours, pc, theirs = spec(hub.url("/everything")), spec(hub.url("/everything-pc")), spec(mcpo)
    for doc in (ours, pc, theirs):
        validate(doc)
    mcpo_tools = tool_ops(theirs, "/")
    print(f"\nmcpo: {len(mcpo_tools)} tools; hub: {len(tool_ops(ours, '/tools/'))} tools")
    assert len(mcpo_tools) >= 10, mcpo_tools.keys()
    # The same client capabilities, the same tools.
    assert set(tool_ops(pc, "/tools/")) == set(mcpo_tools)
    assert set(tool_ops(ours, "/tools/")) == set(mcpo_tools) | CAPABILITY_TOOLS
    # Tools only by default, as MCPO: no resource or prompt operations.
    assert all(p.startswith("/tools/") for p in ours["paths"]), list(ours["paths"])
    # operationId: the exact tool name by default, MCPO's names when asked.
    for name, op in tool_ops(ours, "/tools/").items():
        assert op["operationId"] == name
    mcpo_ids = {name: op["operationId"] for name, op in mcpo_tools.items()}
    migrated = tool_ops(spec(hub.url("/everything-mcpo")), "/tools/")
    assert {n: op["operationId"] for n, op in migrated.items() if n in mcpo_ids} == mcpo_ids
    # Descriptions are the tools' own, in both.
    for name, op in mcpo_tools.items():
        assert tool_ops(ours, "/tools/")[name]["description"] == op["description"]
    # The tool with an outputSchema has it as its 200 schema (MCPO makes a
    # model of it; the hub gives the schema itself, refs into components only).
    ok = tool_ops(ours, "/tools/")["get-structured-content"]["responses"]["200"]
    assert "temperature" in json.dumps(ok)
    assert "#/$defs" not in json.dumps(ours)


def same(a, b) -> bool:
    """Equal as JSON values; MCPO's response models turn 36 into 36.0."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def test_same_calls_give_the_same_bodies(side_by_side):
    hub, mcpo = side_by_side
    base = hub.url("/everything-pc")
    # Where MCPO's mapping is kept: identical bodies.
    for tool in ["echo", "get-sum", "get-annotated-message", "get-tiny-image",
                 "trigger-long-running-operation"]:
        args = ARGS.get(tool, {})
        s1, ours, _ = http("POST", f"{base}/tools/{tool}", args)
        s2, theirs, _ = http("POST", f"{mcpo}/{tool}", args)
        print(f"{tool}: hub {s1}, mcpo {s2}")
        assert (s1, s2) == (200, 200), (tool, ours, theirs)
        assert ours == theirs, (tool, ours, theirs)
    # structuredContent: the hub returns it; MCPO parses the text, which here
    # is the same JSON, so the bodies agree, and the hub's fits the outputSchema.
    s1, ours, _ = http("POST", f"{base}/tools/get-structured-content", ARGS["get-structured-content"])
    s2, theirs, _ = http("POST", f"{mcpo}/get-structured-content", ARGS["get-structured-content"])
    assert (s1, s2) == (200, 200)
    assert isinstance(ours, dict) and set(ours) >= {"temperature", "conditions", "humidity"}, ours
    assert same(ours, theirs), (ours, theirs)
    # Embedded resources: MCPO says "not supported"; the hub gives their text.
    s1, ours, _ = http("POST", f"{base}/tools/get-resource-reference", ARGS["get-resource-reference"])
    s2, theirs, _ = http("POST", f"{mcpo}/get-resource-reference", ARGS["get-resource-reference"])
    assert (s1, s2) == (200, 200)
    assert theirs[1] == "Embedded resource not supported yet."
    assert ours[1].startswith("Resource 1:"), ours
    assert [ours[0], ours[2]] == [theirs[0], theirs[2]]
    # Resource links: MCPO drops them; the hub keeps them.
    s1, ours, _ = http("POST", f"{base}/tools/get-resource-links", ARGS["get-resource-links"])
    s2, theirs, _ = http("POST", f"{mcpo}/get-resource-links", ARGS["get-resource-links"])
    assert (s1, s2) == (200, 200)
    assert ours[0] == theirs
    assert [x["type"] for x in ours[1:]] == ["resource_link", "resource_link"]
    # Errors: the same statuses.
    for tool, args, want in [("get-sum", {"a": "two"}, 422), ("no-such-tool", {}, 404)]:
        s1, ours, _ = http("POST", f"{base}/tools/{tool}", args)
        s2, theirs, _ = http("POST", f"{mcpo}/{tool}", args)
        assert (s1, s2) == (want, want), (tool, ours, theirs)
        assert "detail" in ours and "detail" in theirs
    # Schema errors name the field as FastAPI does.
    _, ours, _ = http("POST", f"{base}/tools/get-sum", {"a": "two"})
    _, theirs, _ = http("POST", f"{mcpo}/get-sum", {"a": "two"})
    assert sorted(e["loc"] for e in ours["detail"]) == sorted(e["loc"] for e in theirs["detail"])
    # Without a key, both refuse.
    assert http("POST", f"{base}/tools/echo", ARGS["echo"], token=None)[0] == 401
    assert http("POST", f"{mcpo}/echo", ARGS["echo"], token=None)[0] == 401
    # The hub's calls are audited like MCP clients' calls.
    assert hub.wait_log(lambda line: 'tools/call "echo": ok' in line), "no audit line"


# An OpenAPI client as Open WebUI's tool-server integration is written
# (backend/open_webui/utils/tools.py): the spec becomes function tools named by
# operationId, with $refs into #/components resolved; a call finds the route by
# operationId, puts path and query parameters where they go, and POSTs all
# arguments as the JSON body with the bearer key.

def resolve_schema(schema, components, seen=()):
    if not schema:
        return {}
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/"), f"a ref Open WebUI cannot resolve: {ref}"
        if ref in seen:
            return {}
        node = components
        for part in ref[len("#/components/"):].split("/"):
            node = node.get(part, {})
        assert node, f"dangling ref {ref}"
        return resolve_schema(node, components, seen + (ref,))
    out = copy.deepcopy(schema)
    for prop, sub in out.get("properties", {}).items():
        out["properties"][prop] = resolve_schema(sub, components, seen)
    if "items" in out:
        out["items"] = resolve_schema(out["items"], components, seen)
    return out


def to_tools(doc: dict) -> list[dict]:
    tools = []
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            if not op.get("operationId"):
                continue
            tool = {"name": op["operationId"],
                    "description": op.get("description", op.get("summary", "No description available.")),
                    "parameters": {"type": "object", "properties": {}, "required": []}}
            for p in op.get("parameters", []):
                tool["parameters"]["properties"][p["name"]] = {"type": p.get("schema", {}).get("type"),
                                                               "description": p.get("description", "")}
                if p.get("required"):
                    tool["parameters"]["required"].append(p["name"])
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema:
                resolved = resolve_schema(schema, doc.get("components", {}))
                tool["parameters"]["properties"].update(resolved.get("properties", {}))
                tool["parameters"]["required"] = sorted(set(tool["parameters"]["required"])
                                                        | set(resolved.get("required", [])))
            tools.append(tool)
    return tools


def execute(url: str, doc: dict, name: str, params: dict, token: str):
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if op.get("operationId") == name:
                break
        else:
            continue
        break
    else:
        raise KeyError(f"no operation {name}")
    query = {p["name"]: params[p["name"]] for p in op.get("parameters", [])
             if p["in"] == "query" and p["name"] in params}
    final = url + path
    if query:
        final += "?" + urllib.parse.urlencode(query)
    if op.get("requestBody", {}).get("content"):
        if not params:
            raise ValueError(f"Request body expected for operation '{name}' but none found.")
        status, body, _ = http(method.upper(), final, params, token=token)
    else:
        status, body, _ = http(method.upper(), final, token=token)
    return status, body


def fill(schema: dict) -> dict:
    """Arguments for the required parameters, as a model would fill them in."""
    out = {}
    for name in schema.get("required", []):
        p = schema["properties"].get(name, {})
        t = p.get("type")
        out[name] = (p["enum"][0] if "enum" in p else 1 if t in ("integer", "number")
                     else True if t == "boolean" else [] if t == "array" else {} if t == "object" else "x")
    return out


def test_an_open_webui_style_client_calls_every_operation(side_by_side):
    hub, _ = side_by_side
    # The server that opts in to resources and prompts: every kind of operation.
    url = hub.url("/everything-full")
    doc = spec(url)
    tools = to_tools(doc)
    names = [t["name"] for t in tools]
    assert len(names) == len(set(names)), "operationIds are not unique"
    assert {"list_resources", "read_resource", "list_prompts"} <= set(names)
    resources = execute(url, doc, "list_resources", {}, KEY)[1]["resources"]
    called = 0
    for tool in tools:
        name = tool["name"]
        if name == "read_resource":
            args = {"uri": resources[0]["uri"]}
        else:
            args = ARGS.get(name, fill(tool["parameters"]))
        status, body = execute(url, doc, name, args, KEY)
        called += 1
        print(f"{name}: {status}")
        if name in REFUSED:
            assert status >= 400 and body["detail"]["message"], (name, status, body)
        else:
            assert status == 200, (name, args, status, body)
            assert body is not None
        if name == "read_resource":
            assert isinstance(body, str) and body, body
        if name == "gzip-file-as-resource":
            assert body.startswith("data:application/gzip;base64,"), body
    assert called == len(tools) >= 20
    # A wrong key gets 401 with a Bearer challenge, the spec too.
    status, _, headers = http("GET", url + "/openapi.json", token="wrong")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


def test_per_server_health_is_open(side_by_side):
    hub, _ = side_by_side
    status, body, _ = http("GET", hub.url("/everything/healthz"), token=None)
    assert status == 200 and body["server"] == "everything", body
    assert body["state"] in ("ready", "stopped")
