//! Drop-in configuration: `conf.d/*.json` beside the main config file, each
//! holding only `mcpServers` and/or named clients
//! (`mcpProxy.options.clients`), merged into the main file's servers and
//! clients in lexical order of their file names.
//!
//! Why drop-ins: one file per service is what the operator's commands
//! (`mcp-hub add`, `remove`, …) write, and what a Docker setup with "one
//! directory per service" maps to. The main file keeps the hub's settings.
//!
//! The merge happens on the JSON trees, after each file's own `${VAR}`
//! expansion (so an expansion error names the drop-in it is in) and before
//! the merged tree is typed and validated, so validation sees exactly one
//! config. A server name (or a client name) defined twice, in any two files,
//! is an error naming both. [`Origins`] remembers which file each server and
//! each client came from, so every later error about `mcpServers.NAME…` or
//! `mcpProxy.options.clients.NAME…` names that file, and `mcp-hub show` and
//! `mcp-hub client list` can say where one is defined.
//!
//! [`Files`] is the set of texts a config is built from. The CLI validates a
//! change by loading a modified `Files` (a drop-in replaced, added or
//! removed) before it writes anything.
//!
//! Every config file is read with [`read_file`]: only a regular file (or a
//! symlink to one: Kubernetes mounts ConfigMaps and Secrets as symlinks, and
//! operators link drop-ins from elsewhere), at most [`MAX_FILE_SIZE`]. Whoever
//! can write `conf.d` could otherwise hang a reload on a FIFO or fill the
//! hub's memory from a symlink to `/dev/zero`.

use super::expand;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest config file (main or drop-in) the hub reads: 1 MiB. A config
/// of a thousand servers is well under it.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// The most all config files together may hold: 8 MiB, so that many
/// drop-ins of the largest size cannot add up to what one file may not be.
pub const MAX_TOTAL_SIZE: u64 = 8 << 20;

/// Reads one config file: a regular file (symlinks to one are followed) of at
/// most [`MAX_FILE_SIZE`] bytes of UTF-8. Anything else is refused without
/// blocking and without reading more than the limit plus one byte: the type is
/// checked before opening, the open is non-blocking (a FIFO swapped in between
/// does not wait for a writer), and the open file is checked again.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    read_bounded(path, true)
}

/// [`read_file`], but a symlink is refused too (for a backup's own files,
/// which only `mcp-hub` writes).
pub fn read_file_nofollow(path: &Path) -> std::io::Result<String> {
    read_bounded(path, false)
}

fn read_bounded(path: &Path, follow: bool) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = if follow {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a symlink, which is not followed here",
        ));
    }
    not_regular(&meta)?;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | nofollow)
        .open(path)?;
    let meta = f.metadata()?;
    not_regular(&meta)?;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} KiB, the limit for a config file",
                MAX_FILE_SIZE >> 10
            ),
        )
    };
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn not_regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{kind}, not a regular file (config files must be regular files or symlinks to one)"
        ),
    ))
}

/// The directory of drop-ins for a main config file: `conf.d` beside it.
pub fn dir(main: &Path) -> PathBuf {
    main.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("conf.d")
}

/// Names the CLI gives servers: short, lower case, no hyphens. Claude Code
/// names tools `mcp__<server>__<tool>` and providers cap tool names at 64
/// characters; hyphens and dots break some clients' tool naming.
pub fn name_is_portable(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What `name_is_portable` asks for, in words, for errors and warnings.
pub const NAME_RULE: &str = "1-32 of a-z 0-9 _ (clients build tool names like mcp__<server>__<tool> and cap them at 64 characters)";

#[derive(Debug, thiserror::Error)]
pub enum DropinError {
    #[error("{dir}: cannot read the drop-in directory: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON (comments are allowed): {source}")]
    Json {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: a drop-in holds only \"mcpServers\" (an object of servers) and \"mcpProxy\": {{\"options\": {{\"clients\": …}}}} (an object of named clients); found {found}")]
    Shape { file: String, found: String },
    #[error("{file}: {0}", file = .1)]
    Expand(expand::ExpandError, String),
    #[error("mcpServers.{name}: defined twice, in {first} and in {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("{CLIENTS}.{name}: defined twice, in {first} and in {second}")]
    DuplicateClient {
        name: String,
        first: String,
        second: String,
    },
}

/// The texts a config is built from: the main file and its drop-ins, in the
/// order they load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub main: PathBuf,
    pub main_text: String,
    /// Drop-in path → text. A BTreeMap of paths in one directory iterates in
    /// lexical order of file names, which is the load order.
    pub dropins: BTreeMap<PathBuf, String>,
}

impl Files {
    /// Reads the main file and every `conf.d/*.json` beside it. A missing
    /// `conf.d` is no drop-ins; hidden files (an editor's or our own temp
    /// files) and other extensions are ignored.
    pub fn read(main: &Path) -> Result<Files, super::ConfigError> {
        let main_text = read_file(main).map_err(|source| super::ConfigError::Read {
            path: main.into(),
            source,
        })?;
        let dir = dir(main);
        let mut dropins = BTreeMap::new();
        let mut total = main_text.len() as u64;
        for path in list(&dir)? {
            let text = read_file(&path).map_err(|source| DropinError::Read {
                file: path.clone(),
                source,
            })?;
            total += text.len() as u64;
            if total > MAX_TOTAL_SIZE {
                return Err(DropinError::Read {
                    file: path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "the config files up to this one are larger than {} MiB together, the limit for a config",
                            MAX_TOTAL_SIZE >> 20
                        ),
                    ),
                }
                .into());
            }
            dropins.insert(path, text);
        }
        Ok(Files {
            main: main.into(),
            main_text,
            dropins,
        })
    }

    /// The file a server of this name would be added as.
    pub fn dropin_path(&self, name: &str) -> PathBuf {
        dir(&self.main).join(format!("{name}.json"))
    }

    /// The text of any file of this set, main or drop-in.
    pub fn text(&self, path: &Path) -> Option<&str> {
        if path == self.main {
            Some(&self.main_text)
        } else {
            self.dropins.get(path).map(String::as_str)
        }
    }

    /// Replaces (or with `None` removes) one file of the set.
    pub fn set(&mut self, path: &Path, text: Option<String>) {
        match (path == self.main, text) {
            (true, Some(t)) => self.main_text = t,
            (true, None) => self.main_text = "{}".into(),
            (false, Some(t)) => {
                self.dropins.insert(path.into(), t);
            }
            (false, None) => {
                self.dropins.remove(path);
            }
        }
    }
}

/// The drop-in files in `dir`, in load order.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, DropinError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(DropinError::Dir {
                dir: dir.into(),
                source,
            })
        }
    };
    let mut out = vec![];
    for e in entries {
        let e = e.map_err(|source| DropinError::Dir {
            dir: dir.into(),
            source,
        })?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

/// Where named clients live in a config file.
pub const CLIENTS: &str = "mcpProxy.options.clients";

/// Which file each server (`.0`) and each named client (`.1`) came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub BTreeMap<String, String>, pub BTreeMap<String, String>);

impl Origins {
    /// The file that a config path (`mcpServers.NAME…` or
    /// `mcpProxy.options.clients.NAME…`) is about; `main` for anything else.
    pub fn file_for<'a>(&'a self, path: &str, main: &'a str) -> &'a str {
        let (rest, map) = if let Some(rest) = path.strip_prefix("mcpServers.") {
            (rest, &self.0)
        } else if let Some(rest) = path.strip_prefix(CLIENTS).and_then(|r| r.strip_prefix('.')) {
            (rest, &self.1)
        } else {
            return main;
        };
        // Names may contain dots: take the longest name the path starts with.
        map.iter()
            .filter(|(n, _)| {
                rest.strip_prefix(n.as_str())
                    .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with('['))
            })
            .max_by_key(|(n, _)| n.len())
            .map_or(main, |(_, f)| f.as_str())
    }

    /// The file a named client is defined in.
    pub fn client(&self, name: &str) -> Option<&str> {
        self.1.get(name).map(String::as_str)
    }
}

/// Strips comments and parses one file's text.
pub fn to_value(text: &str, file: &str) -> Result<Value, serde_json::Error> {
    let _ = file;
    serde_json::from_reader(json_comments::StripComments::new(text.as_bytes()))
}

/// The object at `mcpProxy.options.clients` of a (main) config tree, if any.
fn clients_in(v: &Value) -> Option<&Map<String, Value>> {
    v.get("mcpProxy")?
        .get("options")?
        .get("clients")?
        .as_object()
}

/// Merges each drop-in's servers and clients into `main` (already
/// expanded), in order. Returns where each server and client came from.
pub fn merge(
    main: &mut Value,
    main_file: &str,
    dropins: &BTreeMap<PathBuf, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Origins, DropinError> {
    let mut origins = Origins::default();
    if let Some(Value::Object(servers)) = main.get("mcpServers") {
        for name in servers.keys() {
            origins.0.insert(name.clone(), main_file.to_string());
        }
    }
    if let Some(clients) = clients_in(main) {
        for name in clients.keys() {
            origins.1.insert(name.clone(), main_file.to_string());
        }
    }
    if dropins.is_empty() {
        return Ok(origins);
    }
    let mut added = Map::new();
    let mut added_clients = Map::new();
    for (path, text) in dropins {
        let file = path.display().to_string();
        let mut v = to_value(text, &file).map_err(|source| DropinError::Json {
            file: file.clone(),
            source,
        })?;
        let (servers, clients) = parts_of(&mut v, &file)?;
        let mut tree = Value::Object(Map::from_iter([(
            "mcpServers".to_string(),
            Value::Object(servers),
        )]));
        if !clients.is_empty() {
            tree["mcpProxy"] = serde_json::json!({"options": {"clients": clients}});
        }
        expand::expand_tree(&mut tree, "", lookup)
            .map_err(|e| DropinError::Expand(e, file.clone()))?;
        let Value::Object(mut m) = tree else {
            unreachable!("built as an object above")
        };
        let Some(Value::Object(servers)) = m.remove("mcpServers") else {
            unreachable!("built with mcpServers above")
        };
        for (name, server) in servers {
            if let Some(first) = origins.0.get(&name) {
                return Err(DropinError::Duplicate {
                    name,
                    first: first.clone(),
                    second: file,
                });
            }
            origins.0.insert(name.clone(), file.clone());
            added.insert(name, server);
        }
        let clients = match m.remove("mcpProxy") {
            Some(Value::Object(mut p)) => match p.remove("options") {
                Some(Value::Object(mut o)) => match o.remove("clients") {
                    Some(Value::Object(c)) => c,
                    _ => unreachable!("built with clients above"),
                },
                _ => unreachable!("built with options above"),
            },
            _ => Map::new(),
        };
        for (name, client) in clients {
            if let Some(first) = origins.1.get(&name) {
                return Err(DropinError::DuplicateClient {
                    name,
                    first: first.clone(),
                    second: file,
                });
            }
            origins.1.insert(name.clone(), file.clone());
            added_clients.insert(name, client);
        }
    }
    let Value::Object(root) = main else {
        // The main file is not an object: let typing report it.
        return Ok(origins);
    };
    // Not an object: typing reports the main file's error.
    if let Value::Object(servers) = root
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        servers.extend(added);
    }
    if !added_clients.is_empty() {
        // Each level not an object: typing reports the main file's error.
        let mut at = root
            .entry("mcpProxy")
            .or_insert_with(|| Value::Object(Map::new()));
        for key in ["options", "clients"] {
            let Value::Object(m) = at else {
                return Ok(origins);
            };
            at = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
        }
        if let Value::Object(clients) = at {
            clients.extend(added_clients);
        }
    }
    Ok(origins)
}

/// A drop-in's `mcpServers` and its `mcpProxy.options.clients`.
type Parts = (Map<String, Value>, Map<String, Value>);

/// The `mcpServers` object and the `mcpProxy.options.clients` object of one
/// drop-in, or why it is not one.
fn parts_of(v: &mut Value, file: &str) -> Result<Parts, DropinError> {
    let shape = |found: String| DropinError::Shape {
        file: file.into(),
        found,
    };
    let Value::Object(root) = v else {
        return Err(shape(kind(v).into()));
    };
    if let Some(other) = root.keys().find(|k| *k != "mcpServers" && *k != "mcpProxy") {
        return Err(shape(format!("the key {other:?}")));
    }
    let servers = match root.remove("mcpServers") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(shape(format!("\"mcpServers\" as {}", kind(&other)))),
    };
    // mcpProxy → options → clients, each an object holding only the next.
    let mut at = match root.remove("mcpProxy") {
        None => return Ok((servers, Map::new())),
        Some(v) => v,
    };
    let mut path = "mcpProxy".to_string();
    for key in ["options", "clients"] {
        let Value::Object(mut m) = at else {
            return Err(shape(format!("{path:?} as {}", kind(&at))));
        };
        if let Some(other) = m.keys().find(|k| *k != key) {
            return Err(shape(format!("the key \"{path}.{other}\"")));
        }
        at = m.remove(key).unwrap_or_else(|| Value::Object(Map::new()));
        path = format!("{path}.{key}");
    }
    match at {
        Value::Object(m) => Ok((servers, m)),
        other => Err(shape(format!("{path:?} as {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
