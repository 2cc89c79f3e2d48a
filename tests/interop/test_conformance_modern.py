"""The 2026-07-28 scenarios of @modelcontextprotocol/conformance through the hub.

The stable release (0.1.16, test_conformance.py) has none; the prerelease
0.2.0-alpha.12 (installed as `conformance-2026`) carries the requirement sets
of both revisions, frozen at their release (`--requirements <revision>`).
They run against the same fixture server the stable suite uses, once through
the hub and once served by the fixture itself:

- 2025-11-25: the hub must pass exactly what the server passes on its own,
  scenario by scenario (the scenarios the release marks as not scored are
  left out: the fixture's own HTTP mode does not end sessions on DELETE).
- 2026-07-28: the fixture is a 2025-era server, so directly it fails the
  stateless era by design and "equal to direct" cannot hold; the hub is what
  makes it a 2026-07-28 server. The hub must pass every check the fixture
  passes directly, pass every scored scenario a translating hub can pass, and
  fail no check but those the fixture cannot exercise: diagnostic tools it does
  not have (`test_input_required_*`, `test_missing_capability`, ... whose
  input request keys a hub translating a legacy server's pushed requests
  cannot choose), and the Tasks extension, which the hub does not implement."""

import collections
import json
import os
import pathlib
import re
import subprocess
import threading

import pytest

from conftest import HERE, ROOT, Hub, node22

CONFORMANCE = HERE / "node_modules" / "conformance-2026" / "dist" / "index.js"

# Scored 2026-07-28 scenarios whose checks need a server written for the
# stateless era (diagnostic tools returning input_required with fixed keys).
NEEDS_A_MODERN_SERVER = re.compile(r"^input-required-result-")
# Scenarios the release runs but does not score (extension, pending).
NOT_SCORED_RE = re.compile(r"^\s+[✓✗] (\S+) \((extension|pending|added-after-release)\)", re.M)


def fixture_binary() -> str:
    return os.environ.get("MCP_FIXTURE_BIN", str(ROOT / "target" / "debug" / "mcp-fixture"))


Check = collections.namedtuple("Check", "scenario id status error untestable")


def run(url: str, revision: str, out: pathlib.Path) -> tuple[list[Check], set[str], str]:
    if not CONFORMANCE.exists():
        pytest.fail(f"{CONFORMANCE} is missing: run `npm ci` in tests/interop (scripts/test does)")
    p = subprocess.run([node22(), str(CONFORMANCE), "server", "--requirements", revision, "--url", url,
                        "-o", str(out)], capture_output=True, text=True, timeout=300, cwd=out.parent)
    text = p.stdout + p.stderr
    assert re.search(r"Total: \d+ passed, \d+ failed", text), f"no summary from the conformance suite:\n{text[-3000:]}"
    checks = []
    for f in sorted(out.glob("*/checks.json")):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", f.parent.name)
        for c in json.loads(f.read_text()):
            details = c.get("details") or {}
            checks.append(Check(scenario, c["id"], c["status"], c.get("errorMessage"),
                                bool(details.get("untestable")) if isinstance(details, dict) else False))
    assert checks, f"the conformance suite wrote no results to {out}:\n{text[-3000:]}"
    return checks, {m[0] for m in NOT_SCORED_RE.findall(text)}, text


def per_scenario(checks: list[Check], skip: set[str]) -> dict:
    out = collections.defaultdict(lambda: [0, 0])
    for c in checks:
        if c.scenario in skip:
            continue
        if c.status == "SUCCESS":
            out[c.scenario][0] += 1
        elif c.status == "FAILURE":
            out[c.scenario][1] += 1
    return dict(out)


def both(tmp_path: pathlib.Path, revision: str):
    direct = subprocess.Popen([fixture_binary(), "--http", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        m = re.search(r"listening on (\S+)", direct.stderr.readline())
        assert m, "mcp-fixture --http did not start"
        threading.Thread(target=lambda: direct.stderr.read(), daemon=True).start()
        d = run(f"http://{m.group(1)}/mcp", revision, tmp_path / "direct")
    finally:
        direct.kill()
        direct.wait()
    # The suite sends no token; this server opts out of auth explicitly.
    hub = Hub({"fixture": {"command": fixture_binary(), "options": {"authTokens": []}}}, tmp=tmp_path)
    try:
        h = run(hub.url("/fixture/mcp"), revision, tmp_path / "hub")
    finally:
        hub.stop()
    return d, h


def totals(scored: dict) -> tuple[int, int]:
    return sum(p for p, _ in scored.values()), sum(f for _, f in scored.values())


def test_2025_11_25_requirements_through_hub_equal_direct(tmp_path):
    (d_checks, d_skip, _), (h_checks, h_skip, out) = both(tmp_path, "2025-11-25")
    skip = d_skip | h_skip
    direct, through = per_scenario(d_checks, skip), per_scenario(h_checks, skip)
    summary = (f"conformance 2025-11-25 requirements (scored): direct {totals(direct)}, "
               f"through mcp-hub {totals(through)} (passed, failed)")
    print(summary)
    assert totals(direct)[0] > 30, summary
    assert through == direct, summary + "\n" + out[-3000:]


def test_2026_07_28_requirements_through_hub(tmp_path):
    (d_checks, _, _), (h_checks, skip, out) = both(tmp_path, "2026-07-28")
    through = per_scenario(h_checks, skip)
    direct = per_scenario(d_checks, skip)
    summary = (f"conformance 2026-07-28 requirements (scored): through mcp-hub {totals(through)}, "
               f"the 2025-era fixture direct {totals(direct)} (passed, failed)")
    print(summary)
    (tmp_path.parent / "conformance-2026-summary.txt").write_text(summary + "\n")

    # Whatever the server passes alone, it passes behind the hub.
    passed = lambda checks: collections.Counter((c.scenario, c.id) for c in checks if c.status == "SUCCESS")
    lost = passed(d_checks) - passed(h_checks)
    assert not lost, f"checks the fixture passes directly but not through the hub: {sorted(lost)}"

    # No check fails because of the hub.
    blamed = [c for c in h_checks if c.status == "FAILURE" and not c.untestable
              and c.scenario not in skip and not NEEDS_A_MODERN_SERVER.match(c.scenario)]
    assert not blamed, "\n".join(f"{c.scenario} {c.id}: {c.error}" for c in blamed)
    for c in h_checks:
        if c.status == "FAILURE" and NEEDS_A_MODERN_SERVER.match(c.scenario):
            # The tool or prompt is missing, or a later round lacks the first.
            assert re.search(r"Unknown (tool: test_input_required_|prompt)|^Expected InputRequiredResult|"
                             r"^Prerequisite failed", c.error or ""), c

    # The scenarios a translating hub can pass, it passes in full.
    clean = {s for s, (_, f) in through.items() if not f}
    must = {s for s in through if not NEEDS_A_MODERN_SERVER.match(s) and s != "server-stateless"}
    assert must <= clean, f"scenarios with failures: {sorted(must - clean)}\n{summary}"
    assert {"server-stateless", "caching", "tools-call-with-progress", "sep-2164-resource-not-found",
            "dns-rebinding-protection"} <= set(through), sorted(through)
    assert totals(through)[0] > totals(direct)[0] + 40, summary
