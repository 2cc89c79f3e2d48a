//! The npm install of `npx`/`npm exec` servers: `npm install --save-exact`
//! into the install directory (package.json and package-lock.json pin every
//! version), or `npm ci` from an earlier install's lockfile.
//!
//! `install.overrides` (`name@range`) go into the generated package.json's
//! `overrides`, which npm applies to every dependency's dependency.

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
            let mut manifest = serde_json::json!({"private": true});
            let overrides = overrides(&ctx.spec.install.overrides).map_err(|e| {
                InstallError::Result(format!("mcpServers.{}.install.{e}", ctx.step.server))
            })?;
            if !overrides.is_empty() {
                manifest["overrides"] = serde_json::Value::Object(overrides);
            }
            write(
                &dir.join("package.json"),
                format!("{manifest}\n").as_bytes(),
            )?;
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

/// `install.overrides` as package.json's `overrides`: each `name@range`
/// (`@scope/name@range` too). The error starts at `overrides[i]`.
pub(super) fn overrides(
    list: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for (i, o) in list.iter().enumerate() {
        let o = o.trim();
        let split = o
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '@')
            .map(|(at, _)| (&o[..at], &o[at + 1..]));
        match split {
            Some((name, range)) if !name.is_empty() && !range.is_empty() => {
                out.insert(name.into(), range.into());
            }
            _ => {
                return Err(format!(
                    "overrides[{i}]: {o:?} is not name@version for npm (e.g. \"minimist@1.2.8\")"
                ))
            }
        }
    }
    Ok(out)
}

/// Every package node_modules holds at its top level, `name@version`.
fn pinned(dir: &Path) -> Vec<String> {
    let Ok(lock) = read_json(&dir.join("package-lock.json")) else {
        return vec![];
    };
    let mut out: Vec<String> = lock["packages"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("node_modules/")?;
            (!name.contains("/node_modules/"))
                .then(|| format!("{name}@{}", v["version"].as_str().unwrap_or("?")))
        })
        .collect();
    out.sort();
    out
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
        python: None,
        pinned: pinned(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An install dir as npm leaves it, for a package with these bins.
    fn fake(bins: serde_json::Value) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("node_modules/@s/pkg");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(d.path().join("node_modules/.bin")).unwrap();
        let manifest = serde_json::json!({"name": "@s/pkg", "version": "2.0.1", "bin": bins});
        std::fs::write(m.join("package.json"), manifest.to_string()).unwrap();
        std::fs::write(
            d.path().join("package.json"),
            r#"{"dependencies": {"@s/pkg": "2.0.1"}}"#,
        )
        .unwrap();
        for b in ["pkg", "other", "tool"] {
            std::fs::write(d.path().join("node_modules/.bin").join(b), "").unwrap();
        }
        d
    }

    fn pkg(spec: &str, bin: Option<&str>) -> Package {
        Package {
            kind: runner::Kind::Npm,
            runner: "npx".into(),
            spec: spec.into(),
            with: vec![],
            bin: bin.map(str::to_string),
            args: vec![],
        }
    }

    #[test]
    fn the_bin_npx_would_run() {
        // A string bin is named after the package (without its scope).
        let d = fake(serde_json::json!("cli.js"));
        let f = result(&pkg("@s/pkg@^2", None), d.path()).unwrap();
        assert_eq!(
            (f.package.as_str(), f.version.as_str()),
            ("@s/pkg", "2.0.1")
        );
        assert!(f.program.ends_with("node_modules/.bin/pkg"));
        // The one bin; or the one named like the package; or the one asked for.
        let d = fake(serde_json::json!({"tool": "a.js"}));
        assert!(result(&pkg("@s/pkg", None), d.path())
            .unwrap()
            .program
            .ends_with("tool"));
        let d = fake(serde_json::json!({"pkg": "a.js", "other": "b.js"}));
        assert!(result(&pkg("@s/pkg", None), d.path())
            .unwrap()
            .program
            .ends_with("pkg"));
        let d = fake(serde_json::json!({"tool": "a.js", "other": "b.js"}));
        let e = result(&pkg("@s/pkg", None), d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has 2 executables (tool, other)"), "{e}");
        assert!(result(&pkg("@s/pkg", Some("other")), d.path())
            .unwrap()
            .program
            .ends_with("other"));
        // A tarball's name comes from what npm recorded.
        assert_eq!(
            result(&pkg("/x/pkg.tgz", Some("tool")), d.path())
                .unwrap()
                .package,
            "@s/pkg"
        );
    }
}
