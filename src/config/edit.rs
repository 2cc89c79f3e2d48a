//! Changing config files for the operator's commands: atomically (a temp file
//! in the same directory, fsync, rename, fsync of the directory), and with a
//! backup of everything a change replaces or deletes, so `mcp-hub restore`
//! can undo it.
//!
//! Backups live in `backup/` beside the main config file (for the packaged
//! service: `/etc/mcp-hub/backup/`). Why there: it is on the same file system
//! as the files it backs up, root-owned like them, and not a `conf.d/*.json`
//! glob the hub would load. One backup is one directory named
//! `<UTC time>-<operation>-<server>`, holding `manifest.json` (which files the
//! change touched, and whether each existed) and a copy of each file that did.
//! Restoring a backup puts every one of those files back as it was, and
//! deletes the ones that did not exist before (undoing an `add`).
//!
//! New files take the owner, group and mode of the main config file, so a
//! hub that can read `config.json` (the packaged `mcp-hub` user) can read its
//! drop-ins too.
//!
//! A backup is not trusted as written: whoever can write `backup/` could
//! plant one. A restore touches only the main config file and files directly
//! in `conf.d` (the manifest's paths are checked, and the files written are
//! the ones this config names, not the manifest's spelling of them); the
//! copies it reads are plain names of regular files in the backup's own
//! directory; and neither `backup/`, the backup's directory nor its files
//! may be symlinks.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: not a backup: {msg}")]
    BadBackup { path: PathBuf, msg: String },
    #[error("no backup named {0:?}; `mcp-hub restore` lists them")]
    NoBackup(String),
    #[error("{path}: refused: {msg}")]
    Refused { path: PathBuf, msg: String },
}

fn refused(path: &Path, msg: impl Into<String>) -> EditError {
    EditError::Refused {
        path: path.into(),
        msg: msg.into(),
    }
}

/// A name that stays in its directory: no separator, not `.`/`..`, not hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.') && !name.contains('\0')
}

/// The file a backup entry may restore, spelled as this config names it:
/// the main config file, or a `*.json` directly in its `conf.d`.
fn target(main: &Path, recorded: &Path) -> Option<PathBuf> {
    let same_dir = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    let name = recorded.file_name()?.to_str()?;
    let parent = recorded.parent()?;
    let main_dir = main
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if recorded == main
        || (Some(std::ffi::OsStr::new(name)) == main.file_name() && same_dir(parent, main_dir))
    {
        return Some(main.into());
    }
    let conf_d = super::dropin::dir(main);
    (plain_name(name) && name.ends_with(".json") && same_dir(parent, &conf_d))
        .then(|| conf_d.join(name))
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> EditError + 'a {
    move |source| EditError::Io {
        path: path.into(),
        what,
        source,
    }
}

/// The backup directory for a main config file.
pub fn backup_dir(main: &Path) -> PathBuf {
    main.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("backup")
}

/// One file a backup covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The file's path when the backup was taken.
    pub path: PathBuf,
    /// The copy's name inside the backup, when the file existed.
    pub copy: Option<String>,
}

/// `manifest.json` of one backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub operation: String,
    pub server: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub files: Vec<Entry>,
}

/// A backup on disk.
#[derive(Debug, Clone)]
pub struct Backup {
    pub id: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Backup {
    /// The content each file had (`None` for one that did not exist), keyed
    /// by the file of the config at `main` it restores. Refuses the whole
    /// backup if any entry is outside the config or any copy is not a plain
    /// regular file in the backup's directory.
    pub fn contents(&self, main: &Path) -> Result<Vec<(PathBuf, Option<String>)>, EditError> {
        self.manifest
            .files
            .iter()
            .map(|e| {
                let Some(to) = target(main, &e.path) else {
                    return Err(refused(
                        &self.dir.join("manifest.json"),
                        format!(
                            "it names {}, which is not the main config file or a *.json directly in {}; nothing was changed",
                            e.path.display(),
                            super::dropin::dir(main).display()
                        ),
                    ));
                };
                let text = match &e.copy {
                    None => None,
                    Some(c) if !plain_name(c) => {
                        return Err(refused(
                            &self.dir.join("manifest.json"),
                            format!("the copy {c:?} is not a plain file name in the backup; nothing was changed"),
                        ))
                    }
                    Some(c) => {
                        let p = self.dir.join(c);
                        Some(
                            super::dropin::read_file_nofollow(&p)
                                .map_err(io(&p, "cannot read the backup's copy"))?,
                        )
                    }
                };
                Ok((to, text))
            })
            .collect()
    }
}

/// Refuses a symlink where a directory of ours is expected.
fn real_dir(dir: &Path) -> Result<(), EditError> {
    let m = std::fs::symlink_metadata(dir).map_err(io(dir, "cannot read"))?;
    if m.file_type().is_symlink() {
        return Err(refused(
            dir,
            "a symlink; backups are not followed out of the backup directory",
        ));
    }
    if !m.is_dir() {
        return Err(refused(dir, "not a directory"));
    }
    Ok(())
}

/// Every backup, oldest first.
pub fn backups(main: &Path) -> Result<Vec<Backup>, EditError> {
    let dir = backup_dir(main);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(&dir, "cannot list backups")(e)),
    };
    let mut out = vec![];
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        if let Ok(b) = open(&e.path(), id) {
            out.push(b);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One backup by its id.
pub fn backup(main: &Path, id: &str) -> Result<Backup, EditError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(EditError::NoBackup(id.into()));
    }
    let root = backup_dir(main);
    let dir = root.join(id);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Err(EditError::NoBackup(id.into()));
    }
    real_dir(&root)?;
    open(&dir, id.into())
}

fn open(dir: &Path, id: String) -> Result<Backup, EditError> {
    real_dir(dir)?;
    let mpath = dir.join("manifest.json");
    let text = super::dropin::read_file_nofollow(&mpath).map_err(io(&mpath, "cannot read"))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| EditError::BadBackup {
        path: mpath.clone(),
        msg: e.to_string(),
    })?;
    Ok(Backup {
        id,
        dir: dir.into(),
        manifest,
    })
}

/// Applies a set of file changes (`Some(text)`: write, `None`: delete) after
/// backing up every file they touch. Returns the backup's id.
///
/// The caller has validated the result. If a write fails half-way, the files
/// already changed are put back from the backup.
pub fn apply(
    main: &Path,
    operation: &str,
    server: &str,
    changes: &[(PathBuf, Option<String>)],
) -> Result<String, EditError> {
    let b = take_backup(
        main,
        operation,
        server,
        changes.iter().map(|(p, _)| p.as_path()),
    )?;
    let template = Template::of(main);
    for (i, (path, text)) in changes.iter().enumerate() {
        let r = match text {
            Some(t) => write_atomic(path, t.as_bytes(), &template),
            None => remove(path),
        };
        if let Err(e) = r {
            // Undo what was done; report the first failure.
            if let Ok(prev) = b.contents(main) {
                for (p, t) in prev.iter().take(i) {
                    let _ = match t {
                        Some(t) => write_atomic(p, t.as_bytes(), &template),
                        None => remove(p),
                    };
                }
            }
            return Err(e);
        }
    }
    Ok(b.id)
}

fn take_backup<'a>(
    main: &Path,
    operation: &str,
    server: &str,
    paths: impl Iterator<Item = &'a Path>,
) -> Result<Backup, EditError> {
    let root = backup_dir(main);
    create_dir(&root, 0o700)?;
    real_dir(&root)?;
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace([':', '-'], "");
    let base = format!("{stamp}-{operation}-{server}");
    let (mut id, mut n) = (base.clone(), 1);
    let dir = loop {
        let d = root.join(&id);
        match std::fs::create_dir(&d) {
            Ok(()) => break d,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                id = format!("{base}.{n}");
            }
            Err(e) => return Err(io(&d, "cannot create the backup")(e)),
        }
    };
    let mut files = vec![];
    for (i, p) in paths.enumerate() {
        let copy = match super::dropin::read_file(p) {
            Ok(text) => {
                let bytes = text.into_bytes();
                let name = format!(
                    "{i}-{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                );
                let dest = dir.join(&name);
                write_new(&dest, &bytes, 0o600)?;
                Some(name)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(p, "cannot back up")(e)),
        };
        files.push(Entry {
            path: p.into(),
            copy,
        });
    }
    let manifest = Manifest {
        operation: operation.into(),
        server: server.into(),
        created: humantime::format_rfc3339_seconds(now).to_string(),
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_new(&dir.join("manifest.json"), &text, 0o600)?;
    sync_dir(&dir)?;
    sync_dir(&root)?;
    Ok(Backup { id, dir, manifest })
}

/// Replaces one file outside the config (a client's own config file)
/// atomically, after copying the old one to `<file>.bak-<UTC time>` beside it.
/// A new file gets `new_mode`; an existing one keeps its owner and mode.
/// Returns the backup's path, when there was a file to back up.
pub fn replace_with_backup(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
) -> Result<Option<PathBuf>, EditError> {
    let backup = match std::fs::read(path) {
        Ok(old) => {
            let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .replace([':', '-'], "");
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".bak-{stamp}"));
            let b = PathBuf::from(name);
            let mode = std::fs::metadata(path).map_or(0o600, |m| m.mode() & 0o777);
            write_new(&b, &old, mode)?;
            Some(b)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(path, "cannot read")(e)),
    };
    write_atomic(
        path,
        bytes,
        &Template {
            mode: new_mode,
            owner: None,
        },
    )?;
    Ok(backup)
}

/// Owner and mode for new files: the main config file's.
struct Template {
    mode: u32,
    owner: Option<(u32, u32)>,
}

impl Template {
    fn of(main: &Path) -> Template {
        match std::fs::metadata(main) {
            Ok(m) => Template {
                mode: m.mode() & 0o7777,
                owner: Some((m.uid(), m.gid())),
            },
            Err(_) => Template {
                mode: 0o644,
                owner: None,
            },
        }
    }
}

/// Writes `path` atomically: a temp file beside it, fsync, rename, fsync of the
/// directory. An existing file keeps its owner and mode; a new one gets the
/// template's. The directory is created if missing.
fn write_atomic(path: &Path, bytes: &[u8], template: &Template) -> Result<(), EditError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        create_dir(dir, 0o755)?;
    }
    let (mode, owner) = match std::fs::metadata(path) {
        Ok(m) => (m.mode() & 0o7777, Some((m.uid(), m.gid()))),
        Err(_) => (template.mode, template.owner),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        write_new(&tmp, bytes, mode)?;
        if let Some((uid, gid)) = owner {
            // Only root may give a file away; others keep their own.
            let _ = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid));
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                .map_err(io(&tmp, "cannot set the mode"))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path, "cannot replace"))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates a new file with `bytes`, fsynced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EditError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path, "cannot create"))?;
    f.write_all(bytes).map_err(io(path, "cannot write"))?;
    f.sync_all().map_err(io(path, "cannot fsync"))
}

fn remove(path: &Path) -> Result<(), EditError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, "cannot delete")(e)),
    }
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), EditError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io(dir, "cannot create the directory")(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), EditError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "cannot fsync the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_backs_up_and_restore_contents_undo() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("config.json");
        std::fs::write(&main, "{}").unwrap();
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o640)).unwrap();
        let a = d.path().join("conf.d/a.json");
        let id = apply(&main, "add", "a", &[(a.clone(), Some("A1".into()))]).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "A1");
        assert_eq!(std::fs::metadata(&a).unwrap().mode() & 0o777, 0o640);
        let id2 = apply(&main, "add", "a", &[(a.clone(), Some("A2".into()))]).unwrap();
        let id3 = apply(&main, "remove", "a", &[(a.clone(), None)]).unwrap();
        assert!(!a.exists());
        let all: Vec<String> = backups(&main).unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(all, [id.clone(), id2.clone(), id3.clone()]);
        assert_eq!(
            backup(&main, &id).unwrap().contents(&main).unwrap(),
            [(a.clone(), None)]
        );
        assert_eq!(
            backup(&main, &id3).unwrap().contents(&main).unwrap(),
            [(a.clone(), Some("A2".to_string()))]
        );
        assert!(matches!(backup(&main, "../x"), Err(EditError::NoBackup(_))));
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(d.path().join("conf.d"))
            .unwrap()
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn restore_targets_are_the_main_file_and_json_directly_in_conf_d() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("etc/config.json");
        std::fs::create_dir_all(d.path().join("etc/conf.d")).unwrap();
        let conf_d = d.path().join("etc/conf.d");
        assert_eq!(target(&main, &main), Some(main.clone()));
        // Another spelling of the same directory restores to this config's file.
        let other = d.path().join("etc/../etc/conf.d/a.json");
        assert_eq!(target(&main, &other), Some(conf_d.join("a.json")));
        for bad in [
            d.path().join("etc/other.json"),
            d.path().join("etc/conf.d/../../x.json"),
            d.path().join("etc/conf.d/sub/a.json"),
            d.path().join("etc/conf.d/.a.json"),
            d.path().join("etc/conf.d/a.txt"),
            d.path().join("etc/conf.d"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/"),
        ] {
            assert_eq!(target(&main, &bad), None, "{}", bad.display());
        }
    }
}
