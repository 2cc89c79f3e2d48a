//! The operator's commands for installed packages: `mcp-hub install NAME`
//! (ahead of the first start, or again from the lockfile), `upgrade NAME`
//! (newest versions beside the current ones, switched to only after the new
//! install answers `initialize` and `tools/list` in its sandbox) and
//! `rollback NAME` (back to the previous install). Each changes only the
//! record in `pkg/`, atomically; a running server keeps what it runs until its
//! next start.

use super::install::{self, InstallError, Installed, Record, Source};
use crate::config::{Config, StdioSpec, Upstream};
use std::io::{BufRead, Write};
use std::time::Duration;

/// How long a new install may take to answer `initialize` and `tools/list`.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Install,
    Upgrade,
    Rollback,
}

/// Runs `op` for the server `name`; the answer is a line for the operator.
pub fn run(cfg: &Config, name: &str, op: Op) -> Result<String, InstallError> {
    let fail = |m: String| Err(InstallError::Runner(m));
    let Some(server) = cfg.servers.get(name) else {
        return fail(format!("no server {name:?} in the config"));
    };
    let Upstream::Stdio(spec) = &server.upstream else {
        return fail(format!("{name} is a remote server: nothing to install"));
    };
    let Some(profile) = &spec.sandbox else {
        return fail(format!(
            "{name} runs without a sandbox (\"sandbox\": false): its runner installs at start, as it always did"
        ));
    };
    let pkg = match install::package_of(spec) {
        Some(p) => p.map_err(InstallError::Runner)?,
        None => {
            return fail(format!(
                "{name} runs {:?}, not a package runner (npx, npm exec, uvx, uv tool run, pipx run): nothing to install",
                spec.command
            ))
        }
    };
    owner_check(spec)?;
    let _lock = install::lock(&spec.home)?;
    let record = install::read_record(&spec.home);
    let line = match op {
        Op::Install => {
            let same = record
                .as_ref()
                .map(|r| &r.current)
                .filter(|c| c.requested == super::install::requested(spec, &pkg));
            let source = same.map_or(Source::Spec, Source::Lockfile);
            let new = install::install(name, spec, &pkg, Some(source))?;
            let line = format!(
                "{name}: installed {} {} ({})",
                new.package,
                new.version,
                if same.is_some() {
                    "from its lockfile"
                } else {
                    "pinned now"
                }
            );
            install::switch(&spec.home, record, new)?;
            line
        }
        Op::Upgrade => {
            let new = install::install(name, spec, &pkg, Some(Source::Spec))?;
            if let Err(e) = test(name, spec, profile, &new, &pkg.args) {
                let _ = std::fs::remove_dir_all(install::pkg_dir(&spec.home).join(&new.dir));
                return Err(InstallError::Result(format!(
                    "{name}: {} {} failed its test, the current install stays: {e}",
                    new.package, new.version
                )));
            }
            let line = match record.as_ref().map(|r| &r.current) {
                Some(old) => format!(
                    "{name}: upgraded {} {} -> {}; `mcp-hub rollback {name}` goes back",
                    new.package, old.version, new.version
                ),
                None => format!("{name}: installed {} {}", new.package, new.version),
            };
            install::switch(&spec.home, record, new)?;
            line
        }
        Op::Rollback => {
            let Some(Record {
                current,
                previous: Some(previous),
            }) = record
            else {
                return fail(format!("{name}: no previous install to roll back to"));
            };
            let line = format!(
                "{name}: rolled back {} {} -> {}",
                current.package, current.version, previous.version
            );
            install::write_record(
                &spec.home,
                &Record {
                    current: previous,
                    previous: Some(current),
                },
            )?;
            line
        }
    };
    Ok(format!("{line}\n(the server runs it from its next start)"))
}

/// The hub's state directory belongs to the hub's user (`mcp-hub` for the
/// packaged service); installs made by another user would be unusable to it.
fn owner_check(spec: &StdioSpec) -> Result<(), InstallError> {
    use std::os::unix::fs::MetadataExt;
    let Some(state) = spec.home.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(state) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        let who = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map_or(meta.uid().to_string(), |u| u.name);
        return Err(InstallError::Runner(format!(
            "{} belongs to {who}: run this as that user (e.g. sudo -u {who} mcp-hub ...)",
            state.display()
        )));
    }
    Ok(())
}

/// Starts `new` in the server's sandbox and asks it `initialize` and
/// `tools/list`, as the hub would.
fn test(
    name: &str,
    spec: &StdioSpec,
    profile: &super::profile::Profile,
    new: &Installed,
    args: &[String],
) -> Result<(), String> {
    let ready = install::Ready {
        program: install::pkg_dir(&spec.home).join(&new.program),
        args: args.to_vec(),
        pkg: install::pkg_dir(&spec.home),
    };
    let prepared =
        super::prepare_installed(name, spec, profile, Some(&ready)).map_err(|e| e.to_string())?;
    let mut cmd = prepared.command;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    drop(cmd);
    super::wait_ready_blocking(prepared.status).map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let messages = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-hub-upgrade-test","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ];
    let answer = (|| {
        for m in messages {
            writeln!(stdin, "{m}").map_err(|e| format!("write: {e}"))?;
        }
        stdin.flush().map_err(|e| format!("write: {e}"))?;
        let deadline = std::time::Instant::now() + TEST_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .map_err(|_| format!("no tools/list answer within {TEST_TIMEOUT:?}"))?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["id"] == 2 {
                return match v["result"]["tools"].as_array() {
                    Some(_) => Ok(()),
                    None => Err(format!("tools/list answered {v}")),
                };
            }
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    drop(prepared.group);
    answer
}
