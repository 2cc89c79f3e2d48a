//! The sandbox spec: everything the helper stage needs, computed by the hub and
//! handed over on a pipe as JSON. The helper trusts it and does no policy of its
//! own, so what a server may see is decided in one place (`profile.rs`) and can
//! be unit-tested without a namespace in sight.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    /// The server's name, for error messages and the hostname.
    pub server: String,
    /// Absolute path of the program to execve, as seen inside the sandbox.
    pub program: PathBuf,
    /// argv, argv[0] included.
    pub argv: Vec<String>,
    /// The complete environment of the server.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Mounts in the order they are made (parents before children).
    pub mounts: Vec<Mount>,
    /// A private network namespace with only `lo`.
    pub private_network: bool,
    /// TCP ports the server may connect to / bind (Landlock); `None`: any.
    pub connect: Option<Vec<u16>>,
    pub bind: Option<Vec<u16>>,
    /// The cgroup directory to join first, when limits are enforced by cgroups.
    pub cgroup: Option<PathBuf>,
    /// RLIMIT_NPROC inside the sandbox's own user namespace: counts only the
    /// sandbox's tasks, so it bounds a fork bomb even without cgroups.
    pub nproc: Option<u64>,
    /// The hub's pid: the helper exits if its parent is already gone.
    pub parent_pid: u32,
    /// The user and group the server runs as (host ids, mapped 1:1 inside).
    /// The hub's own, or `nobody` when the hub runs as root.
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    /// Where it appears inside the sandbox.
    pub path: PathBuf,
    /// For a bind: the host path with every symlink resolved, when it differs
    /// from `path` (`/etc/localtime -> /usr/share/zoneinfo/…`). Absolute links
    /// cannot be followed while the host's root sits under /oldroot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    pub kind: MountKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MountKind {
    /// A bind of the same host path. Read-only unless `write`; noexec unless `exec`.
    Bind { write: bool, exec: bool },
    /// A symlink, as on the host (e.g. `/lib -> usr/lib`).
    Symlink { target: PathBuf },
    /// An empty tmpfs, writable, noexec.
    Tmpfs,
    /// A fresh procfs of the sandbox's pid namespace.
    Proc,
    /// A tmpfs /dev with null, zero, full, random, urandom, tty and /dev/shm.
    Dev,
}
