//! Package runners: recognizing a stdio server whose command downloads and runs
//! a package (`npx`, `npm exec`, `uvx`, `uv tool run`, `pipx run`) and taking
//! its command line apart into the package to install and the arguments to run
//! it with. The install phase (`install.rs`) installs the package ahead of time,
//! so no package manager runs when the server starts.
//!
//! Only the options these runners document for choosing *what* to run are
//! understood; any other option before the package is refused with its name,
//! rather than guessed at (it might change what gets installed).

use std::path::Path;

/// The package manager family that installs a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `npx`, `npm exec`: `npm install` into a prefix.
    Npm,
    /// `uvx`, `uv tool run`: `uv venv` + `uv pip install`.
    Uv,
    /// `pipx run`: `python3 -m venv` + `pip install`.
    Pipx,
}

/// A package runner's command line, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: Kind,
    /// The runner as written (`npx`, `/opt/uv/bin/uvx`, `npm`…), to find the
    /// package manager beside it.
    pub runner: String,
    /// The package as written: `@scope/pkg`, `pkg@1.2.3`, `mcp-server-fetch`,
    /// `pkg==1.0`, `/path/pkg.tgz`. For uv, `name@version` is turned into
    /// `name==version` (uv's shorthand).
    pub spec: String,
    /// More packages to install beside it (`npx -p a -p b cmd`, `uvx --with x`).
    pub with: Vec<String>,
    /// The command to run when it is not the package's own (`npx -p pkg cmd`,
    /// `uvx --from pkg cmd`, `pipx run --spec pkg app`).
    pub bin: Option<String>,
    /// The server's arguments.
    pub args: Vec<String>,
}

impl Package {
    /// Everything that decides what gets installed, to notice a config change.
    pub fn identity(&self) -> String {
        let mut s = format!("{:?} {}", self.kind, self.spec);
        for w in &self.with {
            s.push_str(" +");
            s.push_str(w);
        }
        s
    }

    /// The Python distribution name of `spec` (`pkg[extra]==1.0` → `pkg`).
    pub fn python_name(&self) -> String {
        python_name(&self.spec)
    }
}

/// Recognizes a package runner. `None`: not one (an absolute binary, `node
/// script.js`…); `Some(Err)`: one, with options this hub does not understand.
pub fn classify(command: &str, args: &[String]) -> Option<Result<Package, String>> {
    let base = Path::new(command).file_name()?.to_str()?;
    let (kind, rest) = match (base, args.first().map(String::as_str)) {
        ("npx", _) => (Kind::Npm, args),
        ("npm", Some("exec" | "x")) => (Kind::Npm, &args[1..]),
        ("uvx", _) => (Kind::Uv, args),
        ("uv", Some("tool")) if args.get(1).is_some_and(|a| a == "run") => (Kind::Uv, &args[2..]),
        ("uv", Some("tool-run")) => (Kind::Uv, &args[1..]),
        ("pipx", Some("run")) => (Kind::Pipx, &args[1..]),
        _ => return None,
    };
    Some(parse(kind, command, rest))
}

fn parse(kind: Kind, runner: &str, args: &[String]) -> Result<Package, String> {
    // Options that take a value, per runner, and those that take none.
    let (from, with, flags): (&[&str], &[&str], &[&str]) = match kind {
        Kind::Npm => (
            &["-p", "--package"],
            &[],
            &[
                "-y",
                "--yes",
                "--no",
                "-q",
                "--quiet",
                "--prefer-online",
                "--prefer-offline",
            ],
        ),
        Kind::Uv => (
            &["--from"],
            &["--with"],
            &[
                "-q",
                "--quiet",
                "--isolated",
                "--no-cache",
                "--refresh",
                "-n",
            ],
        ),
        Kind::Pipx => (&["--spec"], &[], &["-q", "--quiet", "--no-cache"]),
    };
    let mut packages = Vec::new();
    let mut extra = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let target = if from.contains(&name) {
            Some(&mut packages)
        } else if with.contains(&name) {
            Some(&mut extra)
        } else if flags.contains(&name) && inline.is_none() {
            None
        } else {
            return Err(format!(
                "{runner}: option {a} is not supported for a preinstalled server"
            ));
        };
        if let Some(list) = target {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| format!("{runner}: {name} needs a value"))?
                }
            };
            list.push(value);
        }
        i += 1;
    }
    let positional = args.get(i).cloned();
    let rest = args.get(i + 1..).unwrap_or_default().to_vec();
    let (spec, with, bin) = if packages.is_empty() {
        let spec = positional.ok_or_else(|| format!("{runner}: no package named"))?;
        (spec, vec![], None)
    } else {
        let mut packages = packages.into_iter();
        let first = packages.next().unwrap_or_default();
        (first, packages.collect(), positional)
    };
    let spec = if kind == Kind::Uv {
        uv_shorthand(&spec)
    } else {
        spec
    };
    if spec.is_empty() {
        return Err(format!("{runner}: an empty package name"));
    }
    let mut all_with = with;
    all_with.extend(extra);
    Ok(Package {
        kind,
        runner: runner.to_string(),
        spec,
        with: all_with,
        bin,
        args: rest,
    })
}

/// `uvx pkg@1.2` is uv's shorthand for `pkg==1.2`; `pkg@latest` means the newest.
fn uv_shorthand(spec: &str) -> String {
    if spec.contains("://") || spec.starts_with('/') || spec.starts_with('.') {
        return spec.to_string();
    }
    match spec.split_once('@') {
        Some((name, "latest")) => name.to_string(),
        Some((name, version)) if !name.is_empty() && !version.contains(['/', ' ']) => {
            format!("{name}=={version}")
        }
        _ => spec.to_string(),
    }
}

/// A Python requirement's distribution name: up to the first of `[=<>!~@ ;`.
pub fn python_name(spec: &str) -> String {
    spec.split(['[', '=', '<', '>', '!', '~', '@', ' ', ';'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// PEP 503: names compare lowercased with runs of `-_.` as one `-`.
pub fn python_normalize(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// An npm spec's package name when the spec names a registry package
/// (`@scope/pkg@^1` → `@scope/pkg`); `None` for paths, tarballs and URLs,
/// whose name is known only once installed.
pub fn npm_name(spec: &str) -> Option<String> {
    if spec.starts_with(['/', '.', '~']) || spec.contains(':') || spec.ends_with(".tgz") {
        return None;
    }
    let (scope, rest) = match spec.strip_prefix('@') {
        Some(r) => {
            let (scope, rest) = r.split_once('/')?;
            (format!("@{scope}/"), rest)
        }
        None => (String::new(), spec),
    };
    let name = rest.split('@').next()?;
    (!name.is_empty()).then(|| format!("{scope}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cmd: &str, args: &[&str]) -> Option<Result<Package, String>> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        classify(cmd, &args)
    }

    fn ok(cmd: &str, args: &[&str]) -> Package {
        c(cmd, args).expect("a runner").expect("parses")
    }

    #[test]
    fn npx_and_npm_exec() {
        let p = ok(
            "npx",
            &["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
        );
        assert_eq!(p.kind, Kind::Npm);
        assert_eq!(p.spec, "@modelcontextprotocol/server-filesystem");
        assert_eq!(p.args, ["/srv"]);
        assert_eq!(p.bin, None);
        let p = ok("/usr/bin/npx", &["--yes", "pkg@1.2.3", "--flag", "x"]);
        assert_eq!(
            (p.spec.as_str(), p.args.clone()),
            ("pkg@1.2.3", vec!["--flag".into(), "x".into()])
        );
        let p = ok("npx", &["-p", "a", "--package=b", "cmd", "arg"]);
        assert_eq!(
            (p.spec.as_str(), p.with.clone(), p.bin.clone()),
            ("a", vec!["b".into()], Some("cmd".into()))
        );
        assert_eq!(p.args, ["arg"]);
        let p = ok("npm", &["exec", "--yes", "--", "pkg", "stdio"]);
        assert_eq!(
            (p.spec.as_str(), p.args.clone()),
            ("pkg", vec!["stdio".into()])
        );
        assert!(c("npm", &["start"]).is_none());
        assert!(c("node", &["server.js"]).is_none());
        let e = c("npx", &["--registry", "x", "pkg"]).unwrap().unwrap_err();
        assert!(e.contains("option --registry is not supported"), "{e}");
        assert!(c("npx", &["-y"])
            .unwrap()
            .unwrap_err()
            .contains("no package"));
    }

    #[test]
    fn uvx_uv_tool_run_and_pipx_run() {
        let p = ok("uvx", &["mcp-server-fetch", "--ignore-robots-txt"]);
        assert_eq!((p.kind, p.spec.as_str()), (Kind::Uv, "mcp-server-fetch"));
        assert_eq!(p.args, ["--ignore-robots-txt"]);
        assert_eq!(
            ok("uvx", &["mcp-server-time@2025.1"]).spec,
            "mcp-server-time==2025.1"
        );
        assert_eq!(ok("uvx", &["pkg@latest"]).spec, "pkg");
        let p = ok(
            "/opt/bin/uv",
            &[
                "tool",
                "run",
                "--from",
                "pkg[x]==1.0",
                "--with",
                "extra",
                "cmd",
                "a",
            ],
        );
        assert_eq!(p.spec, "pkg[x]==1.0");
        assert_eq!(p.python_name(), "pkg");
        assert_eq!(
            (p.with.clone(), p.bin.clone(), p.args.clone()),
            (vec!["extra".into()], Some("cmd".into()), vec!["a".into()])
        );
        let p = ok("pipx", &["run", "--spec", "pkg==2", "app", "x"]);
        assert_eq!(
            (p.kind, p.spec.as_str(), p.bin.as_deref()),
            (Kind::Pipx, "pkg==2", Some("app"))
        );
        assert!(c("pipx", &["install", "x"]).is_none());
        assert!(c("uv", &["run", "x"]).is_none());
    }

    #[test]
    fn names() {
        assert_eq!(npm_name("@scope/pkg@^1"), Some("@scope/pkg".into()));
        assert_eq!(npm_name("pkg@1.2.3"), Some("pkg".into()));
        assert_eq!(npm_name("pkg"), Some("pkg".into()));
        assert_eq!(npm_name("/tmp/pkg.tgz"), None);
        assert_eq!(npm_name("github:user/repo"), None);
        assert_eq!(python_normalize("Mcp_Server.Fetch"), "mcp-server-fetch");
        assert_eq!(
            python_name("mcp-server-fetch>=1; python_version>'3'"),
            "mcp-server-fetch"
        );
    }
}
