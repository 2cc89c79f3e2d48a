//! The Python installs: `uvx`/`uv tool run` with `uv venv` + `uv pip
//! install`, `pipx run` with `python -m venv` + `pip install` (pipx itself is
//! not needed). The lockfile is the venv's `pip freeze`; a reinstall installs
//! exactly that with `-r`.
//!
//! `install.python` makes the venv with the interpreter `interp` picked (uv:
//! `--python <path> --no-python-downloads`). `install.overrides` go to uv as
//! `--override <file>` (they win over the dependencies' own ranges), to pip
//! as `-c <file>` (constraints: they choose among the versions allowed).

use super::{copy, pkg_dir, write, Ctx, Found, InstallError, Source};
use crate::sandbox::profile;
use crate::sandbox::runner::{self, Kind, Package};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn install(
    ctx: &Ctx,
    from: Source,
    env: &mut BTreeMap<String, String>,
) -> Result<Found, InstallError> {
    let (pkg, dir) = (ctx.pkg, ctx.dir);
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let (v, py) = (venv.display().to_string(), python.display().to_string());
    let cache = ctx.cache.display().to_string();
    let (create, installer, freeze): (Vec<String>, Vec<String>, Vec<String>) =
        if pkg.kind == Kind::Uv {
            let uv = ctx.beside("uv");
            env.insert("UV_CACHE_DIR".into(), cache);
            // A Python uv downloads must outlive the install's scratch dirs.
            env.insert(
                "UV_PYTHON_INSTALL_DIR".into(),
                dir.join("python").display().to_string(),
            );
            env.insert("UV_LINK_MODE".into(), "copy".into());
            let mut create = vec![uv.clone(), "venv".into(), "--quiet".into()];
            if let Some(p) = &ctx.python {
                // The machine's interpreter, or an error: never a download.
                env.insert("UV_PYTHON_DOWNLOADS".into(), "never".into());
                create.extend([
                    "--python".into(),
                    p.path.display().to_string(),
                    "--no-python-downloads".into(),
                ]);
            }
            create.push(v);
            (
                create,
                vec![
                    uv.clone(),
                    "pip".into(),
                    "install".into(),
                    "--python".into(),
                    py.clone(),
                ],
                vec![uv, "pip".into(), "freeze".into(), "--python".into(), py],
            )
        } else {
            env.insert("PIP_CACHE_DIR".into(), cache);
            env.insert("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into());
            let pip = venv.join("bin/pip").display().to_string();
            let base = match &ctx.python {
                Some(p) => p.path.display().to_string(),
                None => pipx_python(ctx, env),
            };
            (
                vec![base, "-m".into(), "venv".into(), v],
                vec![pip.clone(), "install".into(), "--no-input".into()],
                vec![pip, "freeze".into()],
            )
        };
    ctx.step.run(&create, env, false)?;
    let lockfile = dir.join("requirements.lock");
    let mut argv = installer;
    let overrides = &ctx.spec.install.overrides;
    if !overrides.is_empty() {
        let file = dir.join("overrides.txt");
        write(&file, format!("{}\n", overrides.join("\n")).as_bytes())?;
        let flag = if pkg.kind == Kind::Uv {
            "--override"
        } else {
            "-c"
        };
        argv.extend([flag.into(), file.display().to_string()]);
    }
    match from {
        Source::Spec => {
            argv.push(pkg.spec.clone());
            argv.extend(pkg.with.iter().cloned());
        }
        Source::Lockfile(old) => {
            copy(&pkg_dir(&ctx.spec.home).join(&old.lockfile), &lockfile)?;
            argv.extend(["-r".into(), lockfile.display().to_string()]);
        }
    }
    ctx.step.run(&argv, env, false)?;
    let frozen = ctx.step.run(&freeze, env, true)?;
    write(&lockfile, frozen.as_bytes())?;
    let mut found = result(pkg, dir, &frozen)?;
    found.python = ctx.python.clone();
    found.pinned = pinned(&frozen);
    Ok(found)
}

/// A freeze's requirements, one per package (comments and options left out).
fn pinned(frozen: &str) -> Vec<String> {
    frozen
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// pipx's own choice: PIPX_DEFAULT_PYTHON, else the python pipx runs with,
/// else python3.
fn pipx_python(ctx: &Ctx, env: &BTreeMap<String, String>) -> String {
    env.get("PIPX_DEFAULT_PYTHON")
        .cloned()
        .or_else(|| {
            let pipx = profile::resolve(&ctx.pkg.runner, &ctx.path, None)?;
            let i = profile::interpreter(&pipx, &ctx.path)?;
            i.file_name()?
                .to_str()?
                .starts_with("python")
                .then(|| i.display().to_string())
        })
        .unwrap_or_else(|| "python3".into())
}

/// Python: the version from the freeze, the script from the venv's bin.
fn result(pkg: &Package, dir: &Path, frozen: &str) -> Result<Found, InstallError> {
    let name = pkg.python_name();
    let want = runner::python_normalize(&name);
    let version = frozen
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once("==")?;
            (runner::python_normalize(n) == want).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let bin = pkg.bin.clone().unwrap_or_else(|| name.clone());
    let program = dir.join("venv/bin").join(&bin);
    if !program.exists() {
        let have: Vec<String> = std::fs::read_dir(dir.join("venv/bin"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !n.starts_with("python") && !n.starts_with("activate") && !n.starts_with("pip")
            })
            .collect();
        return Err(InstallError::Result(format!(
            "{name} {version} installs no command {bin:?} (it has: {})",
            have.join(", ")
        )));
    }
    Ok(Found {
        package: name,
        version,
        program,
        lockfile: dir.join("requirements.lock"),
        python: None,
        pinned: vec![],
    })
}
