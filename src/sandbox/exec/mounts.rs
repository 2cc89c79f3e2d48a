//! The sandbox's file system, built by *init* inside its mount namespace: a
//! tmpfs root holding only what the profile binds, then pivoted to `/` with
//! every host mount detached. Apart from the steps in `exec.rs` because it is
//! the one part that is about paths rather than processes.

#![allow(unsafe_code)]

use super::{at, Step};
use crate::sandbox::spec::{Mount, MountKind, Spec};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the host's root is while the new root is built, and the new root.
const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";

fn inside(root: &str, p: &Path) -> PathBuf {
    Path::new(root).join(p.strip_prefix("/").unwrap_or(p))
}

/// The mount tree: a private copy of the host's mounts is pivoted away under
/// /oldroot, a tmpfs at /newroot gets the binds, and a second pivot makes it /
/// and detaches everything else.
pub(super) fn build_root(spec: &Spec) -> Step {
    let none: Option<&str> = None;
    // Nothing done here may propagate back to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(at("mount", "make / private"))?;
    // A scratch tmpfs to pivot into; /tmp exists everywhere and this mount is
    // private to the sandbox. Sources are then read from /oldroot, so a host
    // path under /tmp stays reachable.
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(at("mount", "scratch tmpfs"))?;
    for d in ["/tmp/oldroot", "/tmp/newroot"] {
        std::fs::create_dir(d).map_err(at("mount", d))?;
    }
    nix::unistd::pivot_root("/tmp", "/tmp/oldroot").map_err(at("pivot_root", "scratch"))?;
    nix::unistd::chdir("/").map_err(at("pivot_root", "chdir /"))?;
    mount(
        Some("tmpfs"),
        NEW,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(at("mount", "root tmpfs"))?;

    for m in &spec.mounts {
        mount_one(spec, m)?;
    }

    nix::unistd::chdir(NEW).map_err(at("pivot_root", NEW))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching
    // it drops the scratch tmpfs and, with it, every host mount.
    nix::unistd::pivot_root(".", ".").map_err(at("pivot_root", "new root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(at("pivot_root", "detach the old root"))?;
    nix::unistd::chdir("/").map_err(at("pivot_root", "chdir /"))?;
    // The root itself is read-only once the mount points exist.
    set_attr(Path::new("/"), false, MOUNT_ATTR_RDONLY)
        .map_err(at("mount", "remount / read-only"))?;
    nix::unistd::chdir(&spec.cwd).map_err(at("cwd", spec.cwd.display()))?;
    Ok(())
}

fn mount_one(spec: &Spec, m: &Mount) -> Step {
    let none: Option<&str> = None;
    let target = inside(NEW, &m.path);
    let shown = m.path.display();
    match &m.kind {
        MountKind::Bind { write, exec } => {
            let source = inside(OLD, m.source.as_ref().unwrap_or(&m.path));
            let is_dir = std::fs::metadata(&source)
                .map_err(at("mount", format!("{shown}: source")))?
                .is_dir();
            mountpoint(&target, is_dir).map_err(at("mount", format!("{shown}: mount point")))?;
            mount(
                Some(&source),
                &target,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(at("mount", format!("{shown}: bind")))?;
            let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
            if !write {
                set |= MOUNT_ATTR_RDONLY;
            }
            if !exec {
                set |= MOUNT_ATTR_NOEXEC;
            }
            set_attr(&target, true, set).map_err(at("mount", format!("{shown}: flags")))?;
        }
        MountKind::Symlink { target: to } => {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(at("mount", format!("{shown}: parent")))?;
            }
            std::os::unix::fs::symlink(to, &target)
                .map_err(at("mount", format!("{shown}: symlink")))?;
        }
        MountKind::Tmpfs => {
            mountpoint(&target, true).map_err(at("mount", format!("{shown}: mount point")))?;
            // /tmp is everyone's; a profile's tmpfs belongs to the server's user.
            let mode = if m.path == Path::new("/tmp") {
                "mode=1777".to_string()
            } else {
                format!("mode=0755,uid={},gid={}", spec.uid, spec.gid)
            };
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some(mode.as_str()),
            )
            .map_err(at("mount", format!("{shown}: tmpfs")))?;
        }
        MountKind::Proc => {
            mountpoint(&target, true).map_err(at("mount", "/proc: mount point"))?;
            mount(
                Some("proc"),
                &target,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                none,
            )
            .map_err(at("mount", "/proc"))?;
        }
        MountKind::Dev => mount_dev(&target)?,
    }
    Ok(())
}

/// A minimal /dev: device nodes cannot be created in a user namespace, so the
/// host's few harmless ones are bound in.
fn mount_dev(target: &Path) -> Step {
    let none: Option<&str> = None;
    mountpoint(target, true).map_err(at("mount", "/dev: mount point"))?;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(at("mount", "/dev: tmpfs"))?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let source = Path::new(OLD).join("dev").join(node);
        if !source.exists() {
            continue;
        }
        let t = target.join(node);
        mountpoint(&t, false).map_err(at("mount", format!("/dev/{node}")))?;
        mount(Some(&source), &t, none, MsFlags::MS_BIND, none)
            .map_err(at("mount", format!("/dev/{node}")))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, target.join(link))
            .map_err(at("mount", format!("/dev/{link}")))?;
    }
    let shm = target.join("shm");
    std::fs::create_dir(&shm).map_err(at("mount", "/dev/shm"))?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777"),
    )
    .map_err(at("mount", "/dev/shm"))?;
    Ok(())
}

/// Creates an empty directory or file to mount on, unless one is there already
/// (a bind below another bind finds the host's own directory).
fn mountpoint(target: &Path, dir: bool) -> std::io::Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if dir {
        std::fs::create_dir_all(target)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        File::create(target).map(drop)
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) (Linux 5.12): unlike a remount it applies to every submount
/// at once, and it leaves flags the kernel has locked (a copied mount's nosuid,
/// atime…) alone instead of failing on them.
fn set_attr(path: &Path, recursive: bool, set: u64) -> Result<(), Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `c` is a NUL-terminated path and `attr` a mount_attr that outlive
    // the call; the size passed is the struct's size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}
