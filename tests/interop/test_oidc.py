"""Sign-in with a real OpenID provider (oidc-provider from npm, started by
oidc_provider.mjs on loopback): the official Python SDK's OAuth clients
(client credentials, and auth code + PKCE with a headless sign-in) against
the hub as an OAuth resource server, the RFC 9728 metadata and the 401s that
point at it, the refusals (each with no upstream started), key rotation at
the provider, rules from the `groups` claim, and the provider going away
after the hub has its keys."""

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

from conftest import HERE, ROOT, TOKEN, Hub, Proc, free_port, node22

FIXTURE = str(ROOT / "target" / "debug" / "mcp-fixture")


class Memory:
    """The SDK's token storage, in memory; optionally with a pre-registered client."""

    def __init__(self, client_info=None):
        self.tokens, self.client_info = None, client_info

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, info):
        self.client_info = info


class Setup:
    """A provider and a hub that trusts it, each on a port chosen first: the
    provider's tokens name the hub's URL as their audience."""

    def __init__(self, tmp, alg="RS256", rules=None, extra_servers=None):
        self.op_port, self.hub_port, self.cb_port = free_port(), free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{self.op_port}"
        self.hub_url = f"http://127.0.0.1:{self.hub_port}"
        self.redirect = f"http://127.0.0.1:{self.cb_port}/callback"
        self.op = Proc("oidc", [node22(), str(HERE / "oidc_provider.mjs"), str(self.op_port), self.hub_url,
                                self.redirect, alg], self.op_port, tmp)
        fixture = {"command": FIXTURE, "sandbox": False, "options": {"logEnabled": True}}
        servers = {"fetch": fixture, "fs": dict(fixture), **(extra_servers or {})}
        rules = rules or [
            {"claim": "groups", "value": "mcp-admins", "servers": "*"},
            {"claim": "groups", "value": "family", "servers": ["fetch"], "rate": "600/min",
             "tools": {"fetch": {"mode": "allow", "list": ["echo"]}}},
        ]
        proxy = {"baseURL": self.hub_url,
                 "options": {"oidc": {"issuer": self.issuer, "scopes": ["mcp"],
                                      "client": "preferred_username", "rules": rules}}}
        try:
            self.hub = Hub(servers, proxy=proxy, tmp=tmp, listen=f"127.0.0.1:{self.hub_port}")
        except Exception:
            self.op.stop()
            raise
        try:
            self.wait_for_keys()
        except Exception:
            # Nothing of a failed setup may outlive the test.
            self.stop()
            raise

    def wait_for_keys(self):
        """Until the hub has fetched the provider's keys (503 before)."""
        token = self.cc_token("cc-admin")
        deadline = time.time() + 30
        while time.time() < deadline:
            if http(self, "POST", "/fetch/mcp", token, initialize())[0] != 503:
                return
            time.sleep(0.2)
        raise AssertionError("the hub never loaded the provider's keys")

    def cc_token(self, client, resource=None):
        data = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "mcp",
                                       "resource": resource or f"{self.hub_url}/fetch/mcp"}).encode()
        req = urllib.request.Request(f"{self.issuer}/token", data=data, method="POST")
        basic = __import__("base64").b64encode(f"{client}:{client}-secret".encode()).decode()
        req.add_header("Authorization", f"Basic {basic}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["access_token"]

    def mint(self, sign="provider", **claims):
        req = urllib.request.Request(f"{self.issuer}/admin/mint", method="POST",
                                     data=json.dumps({"claims": claims, "sign": sign}).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["token"]

    def rotate(self):
        req = urllib.request.Request(f"{self.issuer}/admin/rotate", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["kid"]

    def status(self):
        return json.loads(http(self, "GET", "/status", TOKEN)[1])

    def stop(self):
        self.hub.stop()
        self.op.stop()


def initialize():
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}


def http(s, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(s.hub_url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json, text/event-stream")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def list_and_call(url, auth):
    """tools/list and tools/call over the SDK's streamable HTTP client with `auth`."""
    async with streamable_http_client(url, http_client=create_mcp_http_client(auth=auth)) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert "echo" in names
            result = await session.call_tool("echo", {"text": "signed in"})
            assert "signed in" in "".join(getattr(c, "text", "") for c in result.content)
            return names


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("oidc"))
    yield s
    s.stop()


def test_client_credentials_through_the_sdk(setup):
    provider = ClientCredentialsOAuthProvider(
        server_url=f"{setup.hub_url}/fetch/mcp", storage=Memory(), client_id="cc-admin",
        client_secret="cc-admin-secret", scope="mcp", issuer=setup.issuer)
    run(list_and_call(f"{setup.hub_url}/fetch/mcp", provider))


def headless_sign_in(setup, account):
    """The SDK's redirect and callback handlers: follows the authorization URL
    through the provider's interaction (signing in `account`) with a cookie
    jar, up to the redirect to the client, whose code it hands back."""
    got = {}
    jar = CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def follow(url):
        seen = []
        for _ in range(10):
            seen.append(url)
            if url.startswith(setup.redirect):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
                got.update(code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0])
                return
            if "/interaction/" in url:
                url += ("&" if "?" in url else "?") + f"as={account}"
            try:
                with opener.open(url, timeout=30) as r:
                    raise AssertionError(f"no redirect from {url}: {r.status} {r.read()[:300]!r}")
            except urllib.error.HTTPError as e:
                if e.code not in (302, 303):
                    raise AssertionError(f"{url}: {e.code} {e.read()[:500]!r}")
                url = urllib.parse.urljoin(url, e.headers["Location"])
        raise AssertionError("too many redirects: " + "\n".join(seen))

    async def redirect_handler(url):
        await asyncio.to_thread(follow, url)

    async def callback_handler():
        return AuthorizationCodeResult(**got)

    return redirect_handler, callback_handler


def auth_code_provider(setup, url, account):
    redirect, callback = headless_sign_in(setup, account)
    info = OAuthClientInformationFull(client_id="app", redirect_uris=[setup.redirect],
                                      token_endpoint_auth_method="none",
                                      grant_types=["authorization_code", "refresh_token"])
    storage = Memory(info)
    meta = OAuthClientMetadata(redirect_uris=[setup.redirect], token_endpoint_auth_method="none",
                               grant_types=["authorization_code", "refresh_token"], response_types=["code"])
    return OAuthClientProvider(server_url=url, client_metadata=meta, storage=storage,
                               redirect_handler=redirect, callback_handler=callback), storage


def test_auth_code_with_pkce_through_the_sdk(setup):
    url = f"{setup.hub_url}/fetch/mcp"
    provider, storage = auth_code_provider(setup, url, "alice")
    run(list_and_call(url, provider))
    token = storage.tokens.access_token
    # alice is in `family`: fetch only; the other server is an unknown one to her.
    assert http(setup, "POST", "/fetch/mcp", token, initialize())[0] == 200
    # Her token's audience is /fetch/mcp: not good for /fs.
    assert http(setup, "POST", "/fs/mcp", token, initialize())[0] == 401
    # The caller is named by preferred_username in the audit line, with the subject.
    assert setup.hub.wait_log(lambda line: 'mcp_subject="alice"' in line and "tools/call" in line), \
        "\n".join(setup.hub.logs[-20:])


def test_metadata_and_the_401_that_points_at_it(setup):
    status, _, headers = http(setup, "POST", "/fetch/mcp", None, initialize())
    assert status == 401
    prm = f"{setup.hub_url}/.well-known/oauth-protected-resource/fetch/mcp"
    assert f'resource_metadata="{prm}"' in headers["WWW-Authenticate"]
    assert 'scope="mcp"' in headers["WWW-Authenticate"]
    status, body, _ = http(setup, "GET", "/.well-known/oauth-protected-resource/fetch/mcp")
    doc = json.loads(body)
    assert status == 200
    assert doc["resource"] == f"{setup.hub_url}/fetch/mcp"
    assert doc["authorization_servers"] == [setup.issuer]
    assert doc["scopes_supported"] == ["mcp"]
    assert doc["bearer_methods_supported"] == ["header"]
    doc = json.loads(http(setup, "GET", "/.well-known/oauth-protected-resource")[1])
    assert doc["resource"] == setup.hub_url
    sse = json.loads(http(setup, "GET", "/.well-known/oauth-protected-resource/fetch/sse")[1])
    assert sse["resource"] == f"{setup.hub_url}/fetch/sse"
    # A bad token is told so, with the same pointer.
    status, _, headers = http(setup, "POST", "/fetch/mcp", "x.y.z", initialize())
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert f'resource_metadata="{prm}"' in headers["WWW-Authenticate"]


def test_rules_from_the_groups_claim(setup):
    async def family_session():
        provider = ClientCredentialsOAuthProvider(
            server_url=f"{setup.hub_url}/fetch/mcp", storage=Memory(), client_id="cc-family",
            client_secret="cc-family-secret", scope="mcp", issuer=setup.issuer)
        http_client = create_mcp_http_client(auth=provider)
        async with streamable_http_client(f"{setup.hub_url}/fetch/mcp", http_client=http_client) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                assert {t.name for t in (await session.list_tools()).tools} == {"echo"}
                with pytest.raises(Exception) as refused:
                    await session.call_tool("add", {"a": 1, "b": 2})
                # The refusal names the rule that made the policy.
                assert "mcpProxy.options.oidc.rules[1].tools.fetch" in str(refused.value)

    run(family_session())
    family = setup.cc_token("cc-family")
    assert http(setup, "POST", "/fetch/mcp", family, initialize())[0] == 200
    fs_family = setup.cc_token("cc-family", f"{setup.hub_url}/fs/mcp")
    assert http(setup, "POST", "/fs/mcp", fs_family, initialize())[0] == 404
    admin = setup.cc_token("cc-admin", setup.hub_url)
    assert http(setup, "POST", "/fs/mcp", admin, initialize())[0] == 200
    nobody = setup.cc_token("cc-nobody")
    status, body, _ = http(setup, "POST", "/fetch/mcp", nobody, initialize())
    assert status == 403 and "oidc.rules" in body
    assert setup.hub.wait_log(lambda line: "cc-nobody matches no rule" in line), "\n".join(setup.hub.logs[-20:])
    # A good token without the scope: 403 insufficient_scope, naming it.
    status, _, headers = http(setup, "POST", "/fetch/mcp", setup.mint(scope="openid"), initialize())
    assert status == 403
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert 'scope="mcp"' in headers["WWW-Authenticate"]
    # Metrics count signed-in callers under one label.
    metrics = http(setup, "GET", "/metrics", TOKEN)[1]
    assert 'client="oidc"' in metrics
    assert 'client="cc-family"' not in metrics


def test_six_refusals_each_401_with_no_upstream_traffic(tmp_path):
    s = Setup(tmp_path)
    try:
        now = int(time.time())
        tokens = {
            "wrong audience": s.cc_token("cc-admin", "http://elsewhere.test/mcp"),
            "expired": s.mint(exp=now - 3600, iat=now - 4000),
            "another issuer": s.mint(iss="http://127.0.0.1:1"),
            "alg none": s.mint(sign="none"),
            "HS256 with the public key": s.mint(sign="hs256-public"),
            "a kid not in the JWKS": s.mint(sign="stranger"),
        }
        for why, token in tokens.items():
            status, _, headers = http(s, "POST", "/fetch/mcp", token, initialize())
            assert status == 401, why
            assert 'error="invalid_token"' in headers["WWW-Authenticate"], why
        # wait_for_keys opened a session with a good token; nothing after it
        # started the other server, and no refused request reached either.
        fs = next(x for x in s.status()["servers"] if x["name"] == "fs")
        assert fs["pid"] is None and fs["sessions"] == 0
        for why, token in tokens.items():
            assert http(s, "POST", "/fs/mcp", token, initialize())[0] == 401, why
        fs = next(x for x in s.status()["servers"] if x["name"] == "fs")
        assert fs["pid"] is None and fs["sessions"] == 0
    finally:
        s.stop()


def test_key_rotation_is_picked_up_without_a_restart(tmp_path):
    s = Setup(tmp_path, alg="ES256")
    try:
        before = s.cc_token("cc-admin")
        assert http(s, "POST", "/fetch/mcp", before, initialize())[0] == 200
        assert s.rotate() == "k1"
        after = s.cc_token("cc-admin")
        assert json.loads(__import__("base64").urlsafe_b64decode(after.split(".")[0] + "=="))["kid"] == "k1"
        assert http(s, "POST", "/fetch/mcp", after, initialize())[0] == 200
    finally:
        s.stop()


def test_the_provider_going_away_keeps_the_keys(tmp_path):
    s = Setup(tmp_path, alg="EdDSA")
    try:
        unused = s.cc_token("cc-family")
        s.op.stop()
        # A token the hub has not seen before: checked with the keys it has.
        assert http(s, "POST", "/fetch/mcp", unused, initialize())[0] == 200
        provider = ClientCredentialsOAuthProvider(
            server_url=f"{s.hub_url}/fetch/mcp", storage=Memory(), client_id="cc-family",
            client_secret="cc-family-secret", scope="mcp", issuer=s.issuer)
        with pytest.raises(Exception):
            # Only the provider is gone: a new sign-in cannot happen.
            run(list_and_call(f"{s.hub_url}/fetch/mcp", provider))
    finally:
        s.stop()


def test_the_callers_token_never_reaches_an_upstream(tmp_path):
    """A remote upstream that records the request head the hub sends it (then
    fails it): the hub's own configured header goes up, the caller's token
    does not."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    heads = []

    def record():
        listener.settimeout(60)
        try:
            while len(heads) < 4:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        except OSError:
            pass

    threading.Thread(target=record, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    remote = {"remote": {"url": url, "type": "streamable-http",
                         "headers": {"Authorization": "Bearer upstream-own-token"}}}
    s = Setup(tmp_path, extra_servers=remote)
    try:
        token = s.cc_token("cc-admin", s.hub_url)
        status = http(s, "POST", "/remote/mcp", token, initialize())[0]
        assert status != 401, status
        deadline = time.time() + 20
        while not heads and time.time() < deadline:
            time.sleep(0.1)
        assert heads, "the hub never called the upstream"
        for head in heads:
            assert token not in head
            assert token.split(".")[1] not in head
            assert "Bearer upstream-own-token" in head
    finally:
        s.stop()
        listener.close()
