#!/usr/bin/env bash
# End to end on a real systemd: boots a Debian root with systemd-nspawn, installs
# the .deb, and drives the hub the way an operator does (socket activation,
# reload, watchdog, stop, journal, purge). Needs root, systemd-container and
# debootstrap; the root file system is built once and cached.
# Usage: tests/systemd-e2e/run.sh path/to/mcp-hub.deb path/to/mcp-fixture
set -uo pipefail

DEB=$(realpath "$1")
FIXTURE=$(realpath "$2")
CACHE=${MCP_HUB_E2E_CACHE:-/var/cache/mcp-hub-test}
# Bump the suffix when the debootstrap package list changes.
ROOT=$CACHE/root-bookworm-2
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL - $*"
  [ -n "${L:-}" ] && nsenter -t "$L" -a journalctl -u mcp-hub -n 8 --no-pager 2>/dev/null | sed 's/^/       /'
}
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

if [ "$(id -u)" -ne 0 ]; then
  echo "systemd end-to-end tests need root (systemd-nspawn)" >&2
  exit 1
fi

if [ ! -x "$ROOT/lib/systemd/systemd" ]; then
  # The Debian mirror this machine's apt uses.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  echo "building the container root once (debootstrap from $mirror)"
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,ca-certificates,python3,acl \
    bookworm "$ROOT.tmp" "$mirror" >/dev/null || { echo "debootstrap failed" >&2; exit 1; }
  rm -f "$ROOT.tmp/etc/machine-id" && systemd-machine-id-setup --root="$ROOT.tmp" >/dev/null
  mv "$ROOT.tmp" "$ROOT"
fi

LOG=$(mktemp)
# nspawn's own seccomp allow-list (which every service in the container
# inherits) predates Landlock; a real host has no such filter.
systemd-nspawn -q -D "$ROOT" -b --register=no --keep-unit --volatile=overlay --private-network \
  --system-call-filter="landlock_create_ruleset landlock_add_rule landlock_restrict_self mount_setattr close_range" \
  --bind-ro="$DEB:/tmp/pkg.deb" --bind-ro="$FIXTURE:/usr/local/bin/mcp-fixture" \
  --console=passive >"$LOG" 2>&1 &
NS=$!
L=""
for _ in $(seq 200); do
  L=$(cut -d' ' -f1 "/proc/$NS/task/$NS/children" 2>/dev/null)
  [ -n "$L" ] && break
  sleep 0.1
done
[ -n "$L" ] || { echo "the container did not start"; cat "$LOG"; exit 1; }
X() { nsenter -t "$L" -a "$@"; }
# The minimal root has no procps: find processes through /proc.
children() {
  X sh -c 'for p in /proc/[0-9]*; do case "$(tr "\0" " " < $p/cmdline 2>/dev/null)" in /usr/local/bin/mcp-fixture*) echo "$p";; esac; done'
}
cleanup() {
  X systemctl poweroff >/dev/null 2>&1 || kill "$NS" 2>/dev/null
  wait "$NS" 2>/dev/null
  for h in systemd unified; do for d in payload supervisor; do
    [ -d "/sys/fs/cgroup/$h/$d" ] && find "/sys/fs/cgroup/$h/$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done; done
  rm -f "$LOG"
}
trap cleanup EXIT
for _ in $(seq 300); do
  [[ $(X systemctl is-system-running 2>/dev/null) =~ ^(running|degraded)$ ]] && break
  sleep 0.1
done

TOKEN=e2e-token-$RANDOM$RANDOM
config() { # config NAME... : fixture servers by these names
  local servers="" sep=""
  for n in "$@"; do servers+="$sep\"$n\": {\"command\": \"/usr/local/bin/mcp-fixture\"}"; sep=","; done
  X sh -c "cat > /etc/mcp-hub/config.json" <<JSON
{"mcpProxy": {"options": {"authTokens": ["\${credential:token}"], "logEnabled": true}},
 "mcpServers": {$servers}}
JSON
}
curl_in() { X curl -sS -m 10 "$@"; }
mcp() { # mcp SERVER SESSION BODY -> prints body; -D to a file for the headers
  local server=$1 session=$2 body=$3
  curl_in -X POST "http://127.0.0.1:9090/$server/mcp" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    ${session:+-H "Mcp-Session-Id: $session"} -D /tmp/headers -d "$body"
}
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}'
call() { echo "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":{\"text\":\"$3\"}}}"; }

# 1. Install.
check "dpkg -i installs the package" X dpkg -i /tmp/pkg.deb
check "the postinst created the mcp-hub user" X getent passwd mcp-hub
check "the config is a conffile" X sh -c "dpkg-query -W -f='\${Conffiles}' mcp-hub | grep -q /etc/mcp-hub/config.json"

# The token as a credential, the watchdog short for the test.
X sh -c "umask 077; echo '$TOKEN' > /etc/mcp-hub/token"
X mkdir -p /etc/systemd/system/mcp-hub.service.d
X sh -c "printf '[Service]\nLoadCredential=token:/etc/mcp-hub/token\nWatchdogSec=4s\n' > /etc/systemd/system/mcp-hub.service.d/test.conf"
config fx
X systemctl daemon-reload

# 2. Socket activation.
check "systemctl enable --now mcp-hub.socket" X systemctl enable --now mcp-hub.socket
check "the service waits for its first connection" test "$(X systemctl is-active mcp-hub.service)" = inactive
out=$(mcp fx "" "$INIT")
SESSION=$(X sh -c "grep -i '^mcp-session-id:' /tmp/headers | cut -d' ' -f2 | tr -d '\r'")
check "the first request activates the service and initializes" sh -c "echo '$out' | grep -q mcp-fixture && [ -n '$SESSION' ]"
check "the service is active" test "$(X systemctl is-active mcp-hub.service)" = active
out=$(mcp fx "$SESSION" "$(call 2 echo through-systemd)")
check "tools/call through a stdio server" sh -c "echo '$out' | grep -q through-systemd"
check "a wrong token gets 401" test "$(curl_in -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' http://127.0.0.1:9090/fx/sse)" = 401
check "the service runs as mcp-hub" test "$(X stat -c %U "/proc/$(X systemctl show -p MainPID --value mcp-hub)")" = mcp-hub
HUB=$(X systemctl show -p MainPID --value mcp-hub)
FX=$(children | head -1)
has() { grep -q -- "$1" <<<"$2"; }
check "the stdio server runs in its own pid, mount, user and ipc namespaces" X sh -c "
  for ns in pid mnt user ipc; do [ \"\$(readlink /proc/$HUB/ns/\$ns)\" != \"\$(readlink $FX/ns/\$ns)\" ] || exit 1; done"
check "the sandboxed server has no capabilities" X grep -q '^CapEff:[[:space:]]*0000000000000000' "$FX/status"
check "the sandboxed server cannot see the hub's config" X sh -c "! ls $FX/root/etc/mcp-hub >/dev/null 2>&1"
doctor=$(X systemd-run -q --wait --pipe -p User=mcp-hub -p LoadCredential=token:/etc/mcp-hub/token \
  /usr/bin/mcp-hub --config /etc/mcp-hub/config.json doctor 2>&1)
check "mcp-hub doctor (as the service user) finds the sandbox enforceable" has 'fx: fully enforced' "$doctor"
check "mcp-hub doctor says cgroup limits are not enforced on this host" has 'limits not enforced' "$doctor"

# 3. Reload: a changed config keeps the open session and applies the change.
config fx fx2
check "systemctl reload mcp-hub" X systemctl reload mcp-hub
out=$(mcp fx "$SESSION" "$(call 3 echo after-reload)")
check "the open session survives a reload" sh -c "echo '$out' | grep -q after-reload"
out=$(mcp fx2 "" "$INIT")
check "the added server answers" sh -c "echo '$out' | grep -q mcp-fixture"

# 4. A bad config on reload keeps the hub serving.
X sh -c "echo '{ broken' > /etc/mcp-hub/config.json"
X systemctl reload mcp-hub
out=$(mcp fx "$SESSION" "$(call 4 echo still-serving)")
check "a bad config on reload keeps the hub serving" sh -c "echo '$out' | grep -q still-serving"
check "the reload error is in the journal and STATUS" sh -c "nsenter -t $L -a journalctl -u mcp-hub --no-pager | grep -q 'reload failed' && nsenter -t $L -a systemctl status mcp-hub --no-pager | grep -q 'reload failed'"
config fx fx2
X systemctl reload mcp-hub

# 5. Journal fields.
X journalctl --sync
check "journalctl -u mcp-hub shows MCP_SERVER and the audit fields" \
  sh -c "nsenter -t $L -a journalctl -u mcp-hub -o json --no-pager MCP_SERVER=fx | grep -q '\"MCP_TOOL\":\"echo\"'"
check "a child's stderr line is a journal entry" \
  sh -c "nsenter -t $L -a journalctl -u mcp-hub --no-pager MCP_SERVER=fx | grep -q 'mcp-fixture ready'"
check "the token never reaches the journal" sh -c "! nsenter -t $L -a journalctl --no-pager | grep -q '$TOKEN'"

# 5b. The operator's commands, as root, against the packaged service. The token
# is a credential only the service reads, so the commands get it from MCP_HUB_TOKEN.
M() { X env MCP_HUB_TOKEN="$TOKEN" /usr/bin/mcp-hub "$@"; }
code() { curl_in -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:9090$1"; }
out=$(M add fx3 -- /usr/local/bin/mcp-fixture 2>&1)
check "mcp-hub add writes conf.d/fx3.json" X test -f /etc/mcp-hub/conf.d/fx3.json
check "mcp-hub add reloads through systemctl reload mcp-hub" has 'reloaded (systemctl reload mcp-hub)' "$out"
check "mcp-hub add runs the test and it passes" has '^PASS' "$out"
check "mcp-hub test fx3 passes on both routes" M test fx3
check "mcp-hub list shows fx3 ready, live from /status" sh -c "nsenter -t $L -a env MCP_HUB_TOKEN=$TOKEN mcp-hub list --json | grep -q '\"source\": \"hub\"'"
check "GET / answers 200 without a token" test "$(curl_in -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/)" = 200
out=$(M remove fx3 2>&1)
check "mcp-hub remove verifies the 404" has 'verified: /fx3/mcp answers 404' "$out"
check "/fx3/mcp answers 404 after remove" test "$(code /fx3/mcp)" = 404
# A grant on a home Debian made 0700: the hub (as mcp-hub) cannot even resolve
# the path, so it refuses the config on reload; check (as root) reports why,
# with the fix, and add --grant applies that fix.
X sh -c 'mkdir -p /home/administrator/projects && echo hello > /home/administrator/projects/readme.txt && chmod 700 /home/administrator'
READ='{"attempt":"read","path":"/home/administrator/projects/readme.txt"}'
X sh -c 'cat > /etc/mcp-hub/conf.d/files.json' <<'JSON'
{"mcpServers": {"files": {"command": "/usr/local/bin/mcp-fixture", "sandbox": {"read": ["/home/administrator/projects"]}}}}
JSON
X systemctl reload mcp-hub
sleep 1
check "without the grant, the hub refuses the config on reload" has 'reload failed; still running the previous config: /etc/mcp-hub/conf.d/files.json: mcpServers.files.sandbox.read\[0\]: /home/administrator/projects: Permission denied' "$(X journalctl -u mcp-hub --no-pager -n 20)"
out=$(M check 2>&1)
check "mcp-hub check exits non-zero on the unusable grant" sh -c "! nsenter -t $L -a env MCP_HUB_TOKEN=$TOKEN mcp-hub check >/dev/null 2>&1"
check "mcp-hub check names the blocking directory and the fix" has 'is not readable by mcp-hub (/home/administrator is 0700, owned by root); grant it with: setfacl -m u:mcp-hub:x /home/administrator && setfacl -R -m u:mcp-hub:rX,d:u:mcp-hub:rX /home/administrator/projects' "$out"
check "mcp-hub doctor exits non-zero while the grant is unusable" sh -c "! nsenter -t $L -a mcp-hub doctor >/dev/null 2>&1"
check "mcp-hub doctor names the unusable grant" has 'files: grant NOT usable' "$(M doctor 2>&1)"
X rm /etc/mcp-hub/conf.d/files.json
out=$(M add files --read /home/administrator/projects --grant -- /usr/local/bin/mcp-fixture 2>&1)
check "mcp-hub add --grant applies the ACLs" has 'granted: setfacl -m u:mcp-hub:x /home/administrator' "$out"
check "mcp-hub add --grant: the new server's test passes" has '^PASS' "$out"
check "with the grant, the server reads the file" has 'succeeded' "$(M call files probe "$READ" 2>&1)"
check "mcp-hub check is clean again" sh -c "nsenter -t $L -a env MCP_HUB_TOKEN=$TOKEN mcp-hub check >/dev/null 2>&1"
M remove files >/dev/null

# 6. Watchdog: a hub that stops pinging is killed and restarted.
PID=$(X systemctl show -p MainPID --value mcp-hub)
X sh -c "kill -STOP $PID"
for _ in $(seq 150); do
  NEW=$(X systemctl show -p MainPID --value mcp-hub)
  [ "$NEW" != "$PID" ] && [ "$NEW" != 0 ] && break
  sleep 0.1
done
check "a hub that stops pinging the watchdog is restarted" sh -c "[ '$NEW' != '$PID' ] && [ '$NEW' != 0 ]"
check "systemd counted the restart" test "$(X systemctl show -p NRestarts --value mcp-hub)" -ge 1
out=$(mcp fx "" "$INIT")
check "the restarted hub serves" sh -c "echo '$out' | grep -q mcp-fixture"

# 7. Security exposure, for the record.
echo "systemd-analyze security: $(X systemd-analyze security mcp-hub.service --no-pager 2>/dev/null | tail -1)"

# 8. Stop leaves no child behind.
mcp fx "" "$INIT" >/dev/null
check "a child runs before the stop" test -n "$(children)"
X systemctl stop mcp-hub.socket mcp-hub.service
check "systemctl stop leaves no child process" test -z "$(children)"

# 9. Purge.
check "dpkg --purge removes the package" X dpkg --purge mcp-hub
check "purge removed the user" sh -c "! nsenter -t $L -a getent passwd mcp-hub"
check "purge removed /etc/mcp-hub and /var/lib/mcp-hub" sh -c "! nsenter -t $L -a test -e /etc/mcp-hub && ! nsenter -t $L -a test -e /var/lib/mcp-hub"
check "purge removed the units" sh -c "! nsenter -t $L -a test -e /usr/lib/systemd/system/mcp-hub.socket"

echo "systemd-e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
