"""The checks inside the VM (run by tests/cgroup-vm/run.sh as pid 1's child).

The hub runs as root in /sys/fs/cgroup/hub, delegated to it by hand the way
systemd's Delegate=yes does, so it enforces memoryMax, pidsMax and cpuQuota in
a sub-cgroup per server start. Each check prints `CGVM ok NAME` or
`CGVM FAIL NAME: why`; `CGVM DONE` ends the run. Standard library only: the
guest sees the host's root read-only and nothing is installed for it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HUB, FIXTURE = sys.argv[1], sys.argv[2]
CG = "/sys/fs/cgroup"
WORK = "/tmp/cgvm"
PORT = 18090
TOKEN = "cgvm-token"
results = {"ok": 0, "fail": 0}


def say(line):
    print(line, flush=True)


def check(name, cond, detail=""):
    if cond:
        results["ok"] += 1
        say(f"CGVM ok {name}")
    else:
        results["fail"] += 1
        say(f"CGVM FAIL {name}: {detail}")
    return cond


def fatal(why):
    say(f"CGVM FAIL {why}")
    say("CGVM DONE")
    sys.exit(1)


def read(path):
    with open(path) as f:
        return f.read().strip()


def wait_for(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def http(method, path, body=None, headers=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class Session:
    """A streamable-HTTP MCP session with one server."""

    def __init__(self, server):
        self.path = f"/{server}/mcp"
        self.sid = None
        self.next_id = 1
        st, hdr, body = self.post("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "cgroup-vm", "version": "1"}})
        if st != 200:
            raise RuntimeError(f"initialize {server}: {st} {body}")
        self.sid = {k.lower(): v for k, v in hdr.items()}.get("mcp-session-id")
        self.post("notifications/initialized", None, notify=True)

    def post(self, method, params, notify=False):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if not notify:
            msg["id"] = self.next_id
            self.next_id += 1
        hdr = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.sid:
            hdr["Mcp-Session-Id"] = self.sid
        return http("POST", self.path, msg, hdr)

    def call(self, tool, args):
        """The last JSON-RPC message of the answer (JSON or SSE)."""
        st, hdr, body = self.post("tools/call", {"name": tool, "arguments": args})
        msgs = []
        if "text/event-stream" in {k.lower(): v for k, v in hdr.items()}.get("content-type", ""):
            msgs = [json.loads(l[5:]) for l in body.splitlines() if l.startswith("data:") and l[5:].strip()]
        elif body.strip():
            msgs = [json.loads(body)]
        return msgs[-1] if msgs else {"http": st, "body": body}

    def text(self, tool, args):
        m = self.call(tool, args)
        try:
            return m["result"]["content"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{tool}: {m}")


def status(name):
    st, _, body = http("GET", "/status")
    for s in json.loads(body)["servers"]:
        if s["name"] == name:
            return s
    raise RuntimeError(f"no {name} in /status")


def cgroup_of(name):
    """The sub-cgroup the server's sandbox runs in, from its pid."""
    pid = status(name)["pid"]
    rel = read(f"/proc/{pid}/cgroup").split("::", 1)[1]
    return CG + rel


def srv_groups():
    base = f"{CG}/hub"
    return sorted(d for d in os.listdir(base) if d.startswith("srv-"))


def write_config(servers):
    fx = f"{WORK}/bin/mcp-fixture"
    cfg = {"mcpProxy": {"options": {"authTokens": [TOKEN], "stateDir": f"{WORK}/state"}},
           "mcpServers": {n: {"command": fx, "sandbox": p} for n, p in servers.items()}}
    with open(f"{WORK}/config.json", "w") as f:
        json.dump(cfg, f)


def main():
    t0 = time.time()
    controllers = read(f"{CG}/cgroup.controllers").split()
    if not check("a pure cgroup v2 root with memory, pids and cpu",
                 all(c in controllers for c in ("memory", "pids", "cpu")), f"controllers: {controllers}"):
        fatal("no cgroup v2 controllers: nothing to test")
    # What Delegate=yes does: controllers enabled for a cgroup the hub may manage.
    with open(f"{CG}/cgroup.subtree_control", "w") as f:
        f.write("+memory +pids +cpu")
    os.makedirs(f"{CG}/hub", exist_ok=True)

    os.makedirs(f"{WORK}/bin", exist_ok=True)
    os.makedirs(f"{WORK}/state", exist_ok=True)
    for src, name in ((HUB, "mcp-hub"), (FIXTURE, "mcp-fixture")):
        shutil.copy(src, f"{WORK}/bin/{name}")
        os.chmod(f"{WORK}/bin/{name}", 0o755)
    servers = {
        "mem": {"memoryMax": "64M"},
        "pids": {"pidsMax": 16},
        "cpu": {"cpuQuota": "20%"},
        "free": {},
    }
    write_config(servers)
    log = open(f"{WORK}/hub.log", "w")
    hub = subprocess.Popen(
        ["sh", "-c", f'echo $$ > {CG}/hub/cgroup.procs && exec "$0" "$@"', f"{WORK}/bin/mcp-hub",
         "--config", f"{WORK}/config.json", "serve", "--listen", f"127.0.0.1:{PORT}"],
        stdout=subprocess.DEVNULL, stderr=log, env={"MCP_HUB_LOG": "debug", "PATH": "/usr/bin:/bin"})

    def hub_log():
        with open(f"{WORK}/hub.log") as f:
            return f.read()

    def up():
        try:
            return http("GET", "/healthz")[0] == 200
        except OSError:
            return False

    if not wait_for(up, 60):
        say(hub_log()[-3000:])
        fatal("the hub did not start")
    say(f"CGVM   (hub up {time.time() - t0:.1f}s after the guest's init)")
    check("the hub finds the delegated cgroup and enforces", "enforced (cgroup v2, delegated: /sys/fs/cgroup/hub)" in hub_log(),
          hub_log()[-2000:])
    check("/status: limits enforced, memoryMax 64M in bytes",
          status("mem")["sandbox"]["limits"] == "enforced" and status("mem")["sandbox"]["memoryMax"] == 64 << 20,
          status("mem")["sandbox"])

    # memoryMax: 64M means 64 MiB; 32 MiB fits, 200 MiB is OOM-killed.
    mem = Session("mem")
    group = cgroup_of("mem")
    check("memory.max is 64 MiB (systemd's M)", read(f"{group}/memory.max") == str(64 << 20), read(f"{group}/memory.max"))
    check("memory.swap.max is 0", not os.path.exists(f"{group}/memory.swap.max") or read(f"{group}/memory.swap.max") == "0")
    r = json.loads(mem.text("alloc", {"mb": 32}))
    check("32 MiB fits under memoryMax 64M", r.get("allocated_mb") == 32, r)
    t = time.time()
    m = mem.call("alloc", {"mb": 200})
    msg = (m.get("error") or {}).get("message", "")
    check("200 MiB under memoryMax 64M: the in-flight call fails naming memoryMax",
          "memoryMax" in msg and "out of memory" in msg, m)
    say(f"CGVM   (OOM answer after {time.time() - t:.1f}s: {msg})")
    check("the OOM-killed server's sub-cgroup is removed", wait_for(lambda: not os.path.exists(group), 5), group)
    try:
        again = mem.text("echo", {"text": "again"})
    except RuntimeError as e:
        again = str(e)
    check("the hub restarts the server: the same session's next call works", again == "again", again)
    st = status("mem")
    check("/status: one restart, lastError names memoryMax",
          st["restarts"] == 1 and "memoryMax" in (st["lastError"] or ""), st)
    check("the hub survives", hub.poll() is None and up())
    check("the restarted server has a new sub-cgroup", cgroup_of("mem") != group, cgroup_of("mem"))

    # pidsMax through pids.max (the sandbox's helpers count too).
    pids = Session("pids")
    group = cgroup_of("pids")
    check("pids.max is 16", read(f"{group}/pids.max") == "16", read(f"{group}/pids.max"))
    r = json.loads(pids.text("probe", {"attempt": "forkbomb"}))
    check("a fork bomb stops below pidsMax", not r["escaped"] and 0 < r["spawned"] < 16, r)
    events = dict(l.split() for l in read(f"{group}/pids.events").splitlines())
    check("the cgroup's pids.max refused the forks (pids.events max > 0)", int(events.get("max", 0)) > 0, events)
    check("the server survives its fork bomb", pids.text("echo", {"text": "alive"}) == "alive")

    # cpuQuota through cpu.max: a busy loop stays near 20% of one CPU.
    cpu = Session("cpu")
    group = cgroup_of("cpu")
    check("cpu.max is 20000 100000", read(f"{group}/cpu.max") == "20000 100000", read(f"{group}/cpu.max"))
    r = json.loads(cpu.text("spin", {"ms": 3000}))
    say(f"CGVM   (busy loop under cpuQuota 20%: {r})")
    check("a busy loop under cpuQuota 20% gets at most 30% of a CPU", r["ratio"] <= 0.30, r)
    stat = dict(l.split() for l in read(f"{group}/cpu.stat").splitlines())
    check("cpu.stat: the server was throttled", int(stat.get("nr_throttled", 0)) > 0, stat)
    free = Session("free")
    r = json.loads(free.text("spin", {"ms": 1500}))
    say(f"CGVM   (control, no quota: {r})")
    check("control: the same loop without cpuQuota gets more than twice that", r["ratio"] > 0.40, r)

    # Stop: removing a server on reload removes its sub-cgroup.
    del servers["cpu"]
    write_config(servers)
    hub.send_signal(signal.SIGHUP)
    check("a server stopped by reload leaves no sub-cgroup", wait_for(lambda: not os.path.exists(group), 10),
          f"{group} still there")
    hub.send_signal(signal.SIGTERM)
    try:
        code = hub.wait(30)
    except subprocess.TimeoutExpired:
        hub.kill()
        code = "hung"
    check("the hub stops cleanly on SIGTERM", code == 0, code)
    check("no server sub-cgroup is left after the hub stopped", srv_groups() == [], srv_groups())
    if results["fail"]:
        say("CGVM   hub log (tail):")
        for line in hub_log().splitlines()[-25:]:
            say(f"CGVM   {line}")
    say(f"CGVM   ({time.time() - t0:.1f}s in the guest)")


try:
    main()
except Exception as e:  # noqa: BLE001 - any crash of the checks is a failure
    import traceback
    say(f"CGVM FAIL the checks crashed: {e!r}")
    for line in traceback.format_exc().splitlines():
        say(f"CGVM   {line}")
say("CGVM DONE")
