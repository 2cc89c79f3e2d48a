//! The npm install of `npx`/`npm exec` servers: `npm install --save-exact`
//! into the install directory (package.json and package-lock.json pin every
//! version), or `npm ci` from an earlier install's lockfile.

use super::{copy, pkg_dir, read_json, write, Ctx, Found, InstallError, Source};
use crate::sandbox::runner::{self, Package};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn install(
    ctx: &Ctx,
    from: Source,
    env: &mut BTreeMap<String, String>,
) -> Result<Found, InstallError> {
    let (pkg, dir) = (ctx.pkg, ctx.dir);
    env.insert("npm_config_cache".into(), ctx.cache.display().to_string());
    env.insert("npm_config_update_notifier".into(), "false".into());
    let npm = ctx.beside("npm");
    let d = dir.display().to_string();
    let common = ["--prefix", &d, "--no-audit", "--no-fund", "--loglevel=warn"];
    match from {
        Source::Spec => {
            write(&dir.join("package.json"), b"{\"private\": true}\n")?;
            let mut argv = vec![npm, "install".into(), "--save-exact".into()];
            argv.extend(common.iter().map(|s| s.to_string()));
            argv.push(pkg.spec.clone());
            argv.extend(pkg.with.iter().cloned());
            ctx.step.run(&argv, env, false)?;
        }
        Source::Lockfile(old) => {
            let src = pkg_dir(&ctx.spec.home).join(&old.dir);
            for f in ["package.json", "package-lock.json"] {
                copy(&src.join(f), &dir.join(f))?;
            }
            let mut argv = vec![npm, "ci".into()];
            argv.extend(common.iter().map(|s| s.to_string()));
            ctx.step.run(&argv, env, false)?;
        }
    }
    result(pkg, dir)
}

/// npm: the package's name (from the install's package.json for a path or
/// tarball spec), version and bin.
fn result(pkg: &Package, dir: &Path) -> Result<Found, InstallError> {
    let root = read_json(&dir.join("package.json"))?;
    let deps: Vec<String> = root["dependencies"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let others: Vec<String> = pkg
        .with
        .iter()
        .filter_map(|w| runner::npm_name(w))
        .collect();
    let name = runner::npm_name(&pkg.spec)
        .or_else(|| deps.iter().find(|d| !others.contains(d)).cloned())
        .ok_or_else(|| InstallError::Result(format!("npm installed nothing for {}", pkg.spec)))?;
    let manifest = read_json(&dir.join("node_modules").join(&name).join("package.json"))?;
    let version = manifest["version"].as_str().unwrap_or("").to_string();
    let short = name.rsplit('/').next().unwrap_or(&name).to_string();
    let bins: Vec<String> = match &manifest["bin"] {
        serde_json::Value::String(_) => vec![short.clone()],
        serde_json::Value::Object(o) => o.keys().cloned().collect(),
        _ => vec![],
    };
    // npx's rule: the one bin, or the one named like the package.
    let bin = match &pkg.bin {
        Some(b) => b.clone(),
        None if bins.len() == 1 => bins[0].clone(),
        None if bins.contains(&short) => short,
        None => {
            return Err(InstallError::Result(format!(
                "{name} has {} executables ({}); name one with `npx -p {name} COMMAND`",
                bins.len(),
                bins.join(", ")
            )))
        }
    };
    let program = dir.join("node_modules/.bin").join(&bin);
    if !program.exists() {
        return Err(InstallError::Result(format!(
            "{name} {version} installs no executable {bin:?}"
        )));
    }
    Ok(Found {
        package: name,
        version,
        program,
        lockfile: dir.join("package-lock.json"),
    })
}
