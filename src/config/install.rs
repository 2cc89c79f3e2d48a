//! A package-runner server's `install` options, read as written
//! (`raw::RawInstall`) and validated here:
//!
//! ```jsonc
//! "install": {"python": ">=3.12",                 // or "/usr/bin/python3.12"
//!             "overrides": ["pglast==7.22", "mcp<2"]}
//! ```
//!
//! `python` picks the interpreter a Python runner's venv is made with, from
//! the machine only (never a download): a version spec matched against the
//! `python3.x` on PATH, or an absolute path. `overrides` are requirements that
//! win over what the package's own dependencies ask for (uv `--override`, pip
//! constraints, npm `overrides`). Whether they fit the runner is checked where
//! the runner is known (`sandbox::install::check`).

use super::raw::RawInstall;
use super::{invalid, Invalid};
use std::path::PathBuf;

/// The validated options; the default is "as the runner would".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOptions {
    pub python: Option<PythonWant>,
    pub overrides: Vec<String>,
}

impl InstallOptions {
    pub fn is_default(&self) -> bool {
        self.python.is_none() && self.overrides.is_empty()
    }

    /// What these options add to a package's identity: a change means a new
    /// install.
    pub fn identity(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.python {
            s.push_str(&format!(" python={p}"));
        }
        for o in &self.overrides {
            s.push_str(&format!(" override={o}"));
        }
        s
    }
}

/// Which interpreter a Python install uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonWant {
    /// This one (an absolute path).
    Path(PathBuf),
    /// The newest on PATH whose version fits.
    Spec(VersionSpec),
}

impl std::fmt::Display for PythonWant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PythonWant::Path(p) => write!(f, "{}", p.display()),
            PythonWant::Spec(s) => write!(f, "{}", s.text),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    /// `==3.12` and a bare `3.12`: any 3.12.x.
    Eq,
    Ne,
}

/// A version spec such as `>=3.11,<3.13` or `3.12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpec {
    pub text: String,
    clauses: Vec<(Op, Vec<u32>)>,
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<VersionSpec, String> {
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(p, op)| part.strip_prefix(p).map(|r| (*op, r)))
            .unwrap_or((Op::Eq, part));
            let nums: Result<Vec<u32>, _> = rest.trim().split('.').map(str::parse).collect();
            match nums {
                Ok(n) if !n.is_empty() && n.len() <= 3 => clauses.push((op, n)),
                _ => {
                    return Err(format!(
                        "{text:?} is not a Python version spec: write e.g. \">=3.12\", \"3.11\" or \">=3.10,<3.13\""
                    ))
                }
            }
        }
        Ok(VersionSpec {
            text: text.trim().to_string(),
            clauses,
        })
    }

    /// Whether `version` (major, minor, patch) fits every clause.
    pub fn matches(&self, version: &[u32]) -> bool {
        self.clauses.iter().all(|(op, want)| {
            let pad = |v: &[u32]| -> Vec<u32> {
                let mut v = v.to_vec();
                v.resize(3, 0);
                v
            };
            let (have, want_p) = (pad(version), pad(want));
            let prefix = version.len() >= want.len() && version[..want.len()] == want[..];
            match op {
                Op::Eq => prefix,
                Op::Ne => !prefix,
                Op::Ge => have >= want_p,
                Op::Gt => have > want_p,
                Op::Le => have <= want_p || prefix,
                Op::Lt => have < want_p,
            }
        })
    }
}

/// Validates `<path>.install`.
pub fn validate(raw: Option<&RawInstall>, path: &str) -> Result<InstallOptions, Invalid> {
    let Some(raw) = raw else {
        return Ok(InstallOptions::default());
    };
    let at = format!("{path}.install");
    let python = match raw.python.as_deref().map(str::trim) {
        None => None,
        Some("") => return Err(invalid(format!("{at}.python"), "must not be empty")),
        Some(p) if p.starts_with('/') => Some(PythonWant::Path(PathBuf::from(p))),
        Some(p) => Some(PythonWant::Spec(
            VersionSpec::parse(p).map_err(|m| invalid(format!("{at}.python"), m))?,
        )),
    };
    let overrides = raw.overrides.clone().unwrap_or_default();
    for (i, o) in overrides.iter().enumerate() {
        let bad = if o.trim().is_empty() {
            Some("must not be empty")
        } else if o.trim_start().starts_with('-') {
            Some("is an option, not a requirement: write e.g. \"pkg==1.2\"")
        } else if o.chars().any(char::is_control) {
            Some("must be one line")
        } else {
            None
        };
        if let Some(msg) = bad {
            return Err(invalid(
                format!("{at}.overrides[{i}]"),
                format!("{o:?} {msg}"),
            ));
        }
    }
    Ok(InstallOptions { python, overrides })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specs() {
        let s = |t: &str| VersionSpec::parse(t).unwrap();
        assert!(s(">=3.11").matches(&[3, 11, 2]));
        assert!(!s(">=3.12").matches(&[3, 11, 2]));
        assert!(s("3.11").matches(&[3, 11, 9]) && !s("3.11").matches(&[3, 12, 0]));
        assert!(s("==3.11").matches(&[3, 11, 0]));
        assert!(s(">=3.10,<3.13").matches(&[3, 12, 1]));
        assert!(!s(">=3.10,<3.12").matches(&[3, 12, 1]));
        assert!(s("<=3.11").matches(&[3, 11, 7]));
        assert!(s("!=3.12").matches(&[3, 11, 7]) && !s("!=3.12").matches(&[3, 12, 7]));
        for bad in ["three", ">=3.x", "~=3.11", "", "3.1.2.3"] {
            assert!(VersionSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let raw = |python: Option<&str>, overrides: &[&str]| RawInstall {
            python: python.map(str::to_string),
            overrides: Some(overrides.iter().map(|s| s.to_string()).collect()),
        };
        let e = validate(Some(&raw(Some(">=3.x"), &[])), "mcpServers.pg").unwrap_err();
        assert_eq!(e.path, "mcpServers.pg.install.python");
        let e = validate(
            Some(&raw(None, &["a==1", "--index-url=x"])),
            "mcpServers.pg",
        )
        .unwrap_err();
        assert_eq!(e.path, "mcpServers.pg.install.overrides[1]");
        let o = validate(Some(&raw(Some("/usr/bin/python3"), &["mcp<2"])), "p").unwrap();
        assert_eq!(o.python, Some(PythonWant::Path("/usr/bin/python3".into())));
        assert_eq!(o.identity(), " python=/usr/bin/python3 override=mcp<2");
        assert!(validate(None, "p").unwrap().is_default());
    }
}
