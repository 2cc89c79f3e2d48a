//! What every operator command starts from: the config files (main file plus
//! drop-ins) loaded the way the hub loads them, where the running hub answers,
//! and which token to show it.
//!
//! One difference from the hub: a `${credential:NAME}` the command cannot read
//! (systemd hands credentials to the service only, so there is no
//! `$CREDENTIALS_DIRECTORY` here) does not fail the load. It
//! stays as its literal reference, so `check` and `list` work for the operator
//! too, and a command that needs the token asks for `--token`.

use super::Global;
use crate::config::{self, dropin::Files, Config};
use anyhow::{anyhow, Context};
use std::path::PathBuf;

pub struct Ctx {
    pub config: PathBuf,
    pub g: Global,
}

/// The literal a credential becomes when the command cannot read it.
fn unresolved(key: &str) -> String {
    format!("${{{key}}}")
}

/// True for a token that is only an unread credential reference.
pub fn is_unresolved(token: &str) -> bool {
    token.starts_with("${credential:")
}

/// Looks variables up as the hub does. Outside the service (no
/// `$CREDENTIALS_DIRECTORY`), a credential stays a reference; inside it, a
/// missing one is the error it is for the hub.
pub fn lookup(key: &str) -> Option<String> {
    config::lookup_env(key).or_else(|| {
        (key.starts_with("credential:") && std::env::var_os("CREDENTIALS_DIRECTORY").is_none())
            .then(|| unresolved(key))
    })
}

impl Ctx {
    pub fn new(config: PathBuf, g: Global) -> Ctx {
        Ctx { config, g }
    }

    pub fn json(&self) -> bool {
        self.g.json
    }

    /// The config lock, held from reading the files until a change is written
    /// (`None` for a dry run, which writes nothing).
    pub fn lock(&self, dry_run: bool) -> anyhow::Result<Option<super::lock::ConfigLock>> {
        if dry_run {
            return Ok(None);
        }
        super::lock::take(&self.config, super::lock::WAIT).map(Some)
    }

    /// The config files as they are on disk.
    pub fn files(&self) -> anyhow::Result<Files> {
        Ok(Files::read(&self.config)?)
    }

    /// Validates a set of files as the hub would load them.
    pub fn validate(&self, files: &Files) -> anyhow::Result<Config> {
        Ok(config::load_files(files, &lookup)?)
    }

    /// The files on disk and the config they make.
    pub fn load(&self) -> anyhow::Result<(Files, Config)> {
        let files = self.files()?;
        let cfg = self.validate(&files)?;
        Ok((files, cfg))
    }

    /// Where the running hub answers: --hub-url, else the listen address on
    /// loopback when it listens on every address.
    pub fn hub_url(&self, cfg: &Config) -> anyhow::Result<url::Url> {
        if let Some(u) = &self.g.hub_url {
            return url::Url::parse(u).with_context(|| format!("--hub-url {u:?} is not a URL"));
        }
        let addr =
            config::parse_listen_addr(&cfg.hub.addr).map_err(|m| anyhow!("mcpProxy.addr: {m}"))?;
        let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, "9090"));
        let host = match host {
            "[::]" | "0.0.0.0" | "" => "127.0.0.1",
            h => h,
        };
        url::Url::parse(&format!("http://{host}:{port}/"))
            .with_context(|| format!("mcpProxy.addr {:?} makes no URL", cfg.hub.addr))
    }

    /// The base URL clients use: `over`, else mcpProxy.baseURL, else the listen address.
    pub fn public_base(&self, cfg: &Config, over: Option<&str>) -> anyhow::Result<String> {
        let u = match over {
            Some(u) => url::Url::parse(u).with_context(|| format!("{u:?} is not a URL"))?,
            None => match &cfg.hub.base_url {
                Some(u) => u.clone(),
                None => self.hub_url(cfg)?,
            },
        };
        Ok(u.as_str().trim_end_matches('/').to_string())
    }

    /// The token to send: --token, else the first of the server's (or, for
    /// hub-wide calls, the hub's) tokens. `Err` when the only one is a
    /// credential this command cannot read.
    pub fn token(&self, cfg: &Config, server: Option<&str>) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.g.token {
            return Ok(Some(t.clone()));
        }
        let list: Vec<String> = match server.and_then(|s| cfg.servers.get(s)) {
            Some(s) => s.auth_tokens.clone(),
            None => {
                let mut all = cfg.hub.auth_tokens.clone();
                for s in cfg.servers.values() {
                    all.extend(s.auth_tokens.iter().cloned());
                }
                all
            }
        };
        if list.is_empty() {
            return Ok(None);
        }
        match list.iter().find(|t| !is_unresolved(t)) {
            Some(t) => Ok(Some(t.clone())),
            None => Err(anyhow!(
                "the hub's token is {} and only the service can read that credential; pass --token or set MCP_HUB_TOKEN",
                list[0]
            )),
        }
    }
}

/// Runs a future on a small single-threaded runtime (the commands make a few
/// HTTP requests, one after another).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}
