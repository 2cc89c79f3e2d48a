//! A stdio MCP server as a child process: newline-delimited JSON on stdin/stdout,
//! and every stderr line logged as its own event tagged with the server's name.
//!
//! The child gets only the configured environment plus PATH and HOME, never the
//! hub's whole environment (which may hold tokens and systemd's variables). It is
//! put in its own process group so a stop reaches everything it forked.
//! A server with a sandbox profile (the default) is started through the sandbox
//! helper (`crate::sandbox`); one that opted out is spawned directly.

use super::{set_last_error, Closed, Inbox, LastError, Outbox, Received, Upstream};
use crate::config::StdioSpec;
use crate::jsonrpc::Message;
use crate::sandbox;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The longest line a child may print before the hub drops it as garbage.
const MAX_LINE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

/// How many of a child's last stderr lines `/status` shows after a failure.
pub const RECENT: usize = 20;

/// A child's last stderr lines, newest last.
pub type Recent = Arc<Mutex<std::collections::VecDeque<String>>>;

/// The child process behind a stdio upstream.
pub struct Process {
    pub child: Child,
    pub pid: Option<u32>,
    /// Its last [`RECENT`] stderr lines, escaped and shortened.
    pub recent: Recent,
    /// The task reading its stderr, done at EOF.
    pub stderr_task: Option<tokio::task::JoinHandle<()>>,
    /// The sandbox's sub-cgroup, removed after the child is gone.
    pub cgroup: Option<sandbox::cgroup::Group>,
}

/// Process groups of children not yet reaped, so the hub's exit can kill
/// whatever a stop did not reach in time.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

impl Drop for Process {
    fn drop(&mut self) {
        if let (Some(pid), Ok(mut g)) = (self.pid, GROUPS.lock()) {
            g.retain(|p| *p != pid);
        }
    }
}

/// SIGKILLs every child process group still known; returns how many.
pub fn kill_all_groups() -> usize {
    let groups: Vec<u32> = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for g in &groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*g as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    groups.len()
}

fn command_for(spec: &StdioSpec) -> Command {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args);
    cmd.env_clear();
    cmd.env("PATH", sandbox::profile::inherited_path());
    if let Ok(home) = std::env::var("HOME") {
        cmd.env("HOME", home);
    }
    cmd.envs(&spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// Starts the child (through the sandbox helper unless the server opted out)
/// and, when sandboxed, waits until the helper has exec'd it. Its last stderr
/// line becomes the upstream's last error.
pub async fn spawn(server: &str, spec: &StdioSpec) -> Result<Upstream, SpawnError> {
    let (mut cmd, status, cgroup) = match &spec.sandbox {
        Some(profile) => {
            let p = sandbox::prepare_start(server, spec, profile).await?;
            (Command::from(p.command), Some(p.status), p.group)
        }
        None => {
            let mut cmd = command_for(spec);
            // Unsandboxed, it has no pid namespace to die with: make it die with the hub.
            sandbox::die_with_parent(&mut cmd);
            (cmd, None, None)
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        command: spec.command.clone(),
        source,
    })?;
    // The helper's copy of the status pipe lives in `cmd`: drop it, so the
    // pipe reports EOF once the server is exec'd.
    drop(cmd);
    if let Some(status) = status {
        if let Err(e) = sandbox::wait_ready(status).await {
            let _ = child.kill().await;
            return Err(e.into());
        }
    }
    let pid = child.id();
    if let (Some(p), Ok(mut g)) = (pid, GROUPS.lock()) {
        g.push(p);
    }
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let last_stderr: LastError = Arc::new(Mutex::new(None));
    let recent: Recent = Arc::default();
    let stderr_task = tokio::spawn(stderr_loop(
        server.to_string(),
        pid,
        stderr,
        (last_stderr.clone(), recent.clone()),
    ));
    Ok(Upstream {
        tx: Outbox::Stdin(Stdin(Arc::new(tokio::sync::Mutex::new(Some(stdin))))),
        rx: Inbox::Stdio(Reader {
            server: server.to_string(),
            inner: BufReader::with_capacity(64 * 1024, stdout),
            line: Lines::new(),
            ready: false,
            parsing: None,
        }),
        process: Some(Process {
            child,
            pid,
            recent,
            stderr_task: Some(stderr_task),
            cgroup,
        }),
        last_error: last_stderr,
        tasks: Vec::new(),
    })
}

/// The child's stdin. Senders write under a lock in their own task, so a
/// request reaches the child without a hand-off to a writer task; the lock keeps
/// each message's line whole and one sender's messages in order.
#[derive(Clone)]
pub struct Stdin(Arc<tokio::sync::Mutex<Option<ChildStdin>>>);

impl Stdin {
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let mut line = Vec::with_capacity(msg.weight() + 32);
        msg.write_to(&mut line);
        line.push(b'\n');
        // The line is all that is written: a large message is not held twice
        // while this waits its turn on the pipe.
        drop(msg);
        let mut guard = self.0.lock().await;
        let w = guard.as_mut().ok_or(Closed)?;
        // One write of one whole line: no buffer to flush per message.
        if w.write_all(&line).await.is_err() {
            *guard = None;
            return Err(Closed);
        }
        Ok(())
    }

    /// Closes stdin: the polite way to ask an MCP server to exit. Gives up after
    /// a second if a write is stuck on a child that stopped reading.
    pub async fn close(&self) {
        if let Ok(mut g) = tokio::time::timeout(Duration::from_secs(1), self.0.lock()).await {
            g.take();
        }
    }
}

/// Reads messages from the child's stdout in the task that consumes them, so a
/// response costs no extra task hand-off. Lines that are not JSON-RPC are logged
/// and skipped; a line over [`MAX_LINE`] is dropped. A line over [`INLINE`]
/// (a list of 10,000 tools is about a megabyte) is parsed off the async
/// workers, one hub-wide at a time, so it does not hold up every other
/// request (`/healthz` included); the next line is read only once it is
/// handed on, so the link's messages stay in order.
pub struct Reader {
    server: String,
    inner: BufReader<ChildStdout>,
    line: Lines,
    /// `line` holds a whole line not yet handed on.
    ready: bool,
    /// A large line being parsed off the async workers.
    parsing: Option<tokio::task::JoinHandle<Option<Received>>>,
}

// A stdout line this long or shorter is parsed where it is read.
use crate::offload::INLINE;

impl Reader {
    /// The next message, or `None` at EOF. Cancel-safe: a partial line stays in
    /// the buffer for the next call, and so does a large line's parse.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            if let Some(parsing) = &mut self.parsing {
                let judged = parsing.await;
                self.parsing = None;
                match judged.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())) {
                    Some(r) => return Some(r),
                    None => continue,
                }
            }
            if !self.ready {
                if !self.line.fill(&mut self.inner, &self.server).await {
                    return None;
                }
                self.ready = true;
            }
            if trim_ascii(&self.line.buf).len() > INLINE {
                // In its own task: the parse goes on if this call is
                // cancelled, and the next call waits for it.
                let line = std::mem::replace(&mut self.line.buf, Vec::with_capacity(LINE_START));
                self.ready = false;
                let server = self.server.clone();
                self.parsing = Some(tokio::spawn(crate::offload::run(move || {
                    judge(&server, trim_ascii(&line))
                })));
                continue;
            }
            let judged = judge(&self.server, trim_ascii(&self.line.buf));
            self.line.done();
            self.ready = false;
            if judged.is_some() {
                return judged;
            }
        }
    }
}

/// One stdout line as a message, as garbage (logged), or nothing (blank).
fn judge(server: &str, text: &[u8]) -> Option<Received> {
    if text.is_empty() {
        return None;
    }
    Some(match Message::parse(text) {
        Ok(m) => Received::Msg(m),
        Err(e) => {
            let shown = String::from_utf8_lossy(&text[..text.len().min(200)]);
            let shown = crate::logsafe::Escaped(&shown);
            tracing::warn!(mcp_server = %server, "child wrote a stdout line that is not JSON-RPC ({e}): {shown}");
            Received::Garbage {
                id: crate::jsonrpc::salvage_id(text),
                why: e.to_string(),
            }
        }
    })
}

/// The capacity a stdout line buffer starts with and goes back to.
const LINE_START: usize = 4096;
/// A line buffer grown past this is given back once its line is handed on: one
/// huge line must not hold its memory for the child's whole life.
const LINE_KEEP: usize = 64 * 1024;

/// One stdout line being framed: its bytes so far, and whether the rest of a
/// line over [`MAX_LINE`] is being skipped.
struct Lines {
    buf: Vec<u8>,
    skipping: bool,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            buf: Vec::with_capacity(LINE_START),
            skipping: false,
        }
    }

    /// Reads until `buf` holds one whole line (true) or the input ends
    /// (false). Cancel-safe: what was read stays for the next call.
    async fn fill<R: tokio::io::AsyncBufRead + Unpin>(&mut self, r: &mut R, server: &str) -> bool {
        loop {
            let room = (MAX_LINE as usize).saturating_sub(self.buf.len()).max(1) as u64;
            match (&mut *r).take(room).read_until(b'\n', &mut self.buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            if self.buf.last() != Some(&b'\n') {
                if self.buf.len() as u64 >= MAX_LINE {
                    if !self.skipping {
                        tracing::warn!(mcp_server = %server, "child wrote a line over {MAX_LINE} bytes; dropping it");
                    }
                    self.skipping = true;
                    self.done();
                }
                continue;
            }
            if std::mem::take(&mut self.skipping) {
                self.done();
                continue;
            }
            return true;
        }
    }

    /// The line was handed on: empty the buffer, and give back what a long
    /// line made it grow to.
    fn done(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > LINE_KEEP {
            self.buf = Vec::with_capacity(LINE_START);
        }
    }
}

/// How much of one stderr line is logged; the rest of the line is counted and dropped.
const STDERR_LINE: usize = 64 * 1024;
/// How much of the last stderr line the upstream's last error keeps.
const LAST_ERROR_CHARS: usize = 300;

/// Logs the child's stderr, one event per line, until EOF. Read as bytes, so
/// nothing a child writes stops the reader: a stopped reader closes the pipe,
/// and the child dies on its next write. A line is decoded lossily, cut at
/// [`STDERR_LINE`] (the log says how many bytes were dropped), and escaped
/// ([`crate::logsafe`]) so a child cannot forge or colour log lines.
async fn stderr_loop(
    server: String,
    pid: Option<u32>,
    stderr: tokio::process::ChildStderr,
    last: (LastError, Recent),
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stderr);
    let mut line = StderrLine::default();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(mcp_server = %server, "reading the child's stderr: {e}");
                break;
            }
        };
        let (used, complete) = line.push(buf);
        reader.consume(used);
        if complete {
            line.emit(&server, pid, &last);
        }
    }
    if !line.is_empty() {
        line.emit(&server, pid, &last);
    }
}

/// One stderr line being read: its first [`STDERR_LINE`] bytes, and how many
/// more were dropped.
#[derive(Default)]
struct StderrLine {
    kept: Vec<u8>,
    dropped: u64,
}

impl StderrLine {
    /// Takes bytes up to and including the next newline; returns how many it
    /// used and whether the line is complete.
    fn push(&mut self, buf: &[u8]) -> (usize, bool) {
        let (used, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let part = &buf[..used - usize::from(complete)];
        let room = STDERR_LINE.saturating_sub(self.kept.len()).min(part.len());
        self.kept.extend_from_slice(&part[..room]);
        self.dropped += (part.len() - room) as u64;
        (used, complete)
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// Logs the line (and remembers it as the last error), then starts a new one.
    fn emit(&mut self, server: &str, pid: Option<u32>, last: &(LastError, Recent)) {
        let kept = self.kept.strip_suffix(b"\r").unwrap_or(&self.kept);
        let text = crate::logsafe::escape(&String::from_utf8_lossy(kept));
        let pid = pid.unwrap_or(0);
        if self.dropped > 0 {
            tracing::info!(target: "mcp_hub::child", mcp_server = %server, pid, dropped = self.dropped,
                "{text} [line cut at {STDERR_LINE} bytes; {} more bytes dropped]", self.dropped);
        } else {
            tracing::info!(target: "mcp_hub::child", mcp_server = %server, pid, "{text}");
        }
        if !text.trim().is_empty() {
            let short: String = text.chars().take(LAST_ERROR_CHARS).collect();
            if let Ok(mut r) = last.1.lock() {
                if r.len() == RECENT {
                    r.pop_front();
                }
                r.push_back(short.clone());
            }
            set_last_error(&last.0, short);
        }
        self.kept.clear();
        self.dropped = 0;
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_stdout_line_gives_its_buffer_back() {
        let mut input = vec![b'x'; 8 * 1024 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\n");
        let mut r = BufReader::with_capacity(64 * 1024, &input[..]);
        let mut lines = Lines::new();
        assert!(lines.fill(&mut r, "t").await);
        assert_eq!(lines.buf.len(), 8 * 1024 * 1024 + 1);
        assert!(lines.buf.capacity() >= 8 * 1024 * 1024);
        lines.done();
        assert!(
            lines.buf.capacity() <= LINE_KEEP,
            "{}",
            lines.buf.capacity()
        );
        // The next line reads as usual into the small buffer.
        assert!(lines.fill(&mut r, "t").await);
        assert!(lines.buf.starts_with(b"{\"jsonrpc\""));
        lines.done();
        assert_eq!(lines.buf.capacity(), LINE_START);
        assert!(!lines.fill(&mut r, "t").await);
        // A buffer that stayed small is kept as it is.
        let mut r = BufReader::new(&b"short\n"[..]);
        assert!(lines.fill(&mut r, "t").await);
        let before = lines.buf.as_ptr();
        lines.done();
        assert_eq!(lines.buf.as_ptr(), before);
    }
}
