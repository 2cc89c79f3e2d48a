//! The Python a venv is made with when `install.python` names one: an
//! absolute path as configured, or the newest `python3.x` / `python3` /
//! `python` on PATH whose version fits the spec. Only interpreters already on
//! the machine: the install then passes uv `--no-python-downloads`, so a
//! missing version is an error naming what was found, not a download.

use crate::config::install::PythonWant;
use std::path::{Path, PathBuf};

/// An interpreter picked, and why, for the install and for `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked {
    pub path: PathBuf,
    pub version: String,
    pub why: String,
}

/// One interpreter seen on PATH.
#[derive(Debug, Clone)]
struct Seen {
    /// As found on PATH (`/usr/bin/python3.11`).
    path: PathBuf,
    version: Vec<u32>,
}

fn dotted(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// Asks the interpreter its version (`[3, 11, 2]`).
fn version_of(python: &Path) -> Option<Vec<u32>> {
    let out = std::process::Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys; print('.'.join(map(str, sys.version_info[:3])))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split('.')
        .map(|n| n.parse().ok())
        .collect()
}

/// `python`, `python3`, `python3.N`: the names interpreters are installed as.
fn is_python_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("python") else {
        return false;
    };
    rest.is_empty()
        || rest == "3"
        || rest
            .strip_prefix("3.")
            .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

/// Every interpreter on `path_var`, each real file once (the first name it
/// is found under), in PATH order.
fn on_path(path_var: &str) -> Vec<Seen> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen: Vec<(PathBuf, Seen)> = Vec::new();
    for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_python_name(n))
            .collect();
        // python3.11 before python3 before python: the most telling name.
        names.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        for n in names {
            let p = Path::new(dir).join(&n);
            let Ok(real) = std::fs::canonicalize(&p) else {
                continue;
            };
            let runnable = std::fs::metadata(&real)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !runnable || seen.iter().any(|(r, _)| *r == real) {
                continue;
            }
            if let Some(version) = version_of(&p) {
                seen.push((real, Seen { path: p, version }));
            }
        }
    }
    seen.into_iter().map(|(_, s)| s).collect()
}

/// The interpreter `want` asks for, or why there is none (the caller puts
/// the config path in front).
pub fn pick(want: &PythonWant, path_var: &str) -> Result<Picked, String> {
    match want {
        PythonWant::Path(p) => {
            if !p.exists() {
                return Err(format!(
                    "{} does not exist; install that Python or set install.python to a version spec such as \">=3.11\"",
                    p.display()
                ));
            }
            let v = version_of(p)
                .ok_or_else(|| format!("{} does not run as a Python interpreter", p.display()))?;
            Ok(Picked {
                path: p.clone(),
                version: dotted(&v),
                why: "as configured".into(),
            })
        }
        PythonWant::Spec(spec) => {
            let all = on_path(path_var);
            let best = all
                .iter()
                .filter(|s| spec.matches(&s.version))
                .max_by(|a, b| a.version.cmp(&b.version));
            match best {
                Some(s) => Ok(Picked {
                    path: s.path.clone(),
                    version: dotted(&s.version),
                    why: format!("the newest Python on PATH that fits {}", spec.text),
                }),
                None => {
                    let found = if all.is_empty() {
                        "found none on PATH".to_string()
                    } else {
                        let list: Vec<String> = all
                            .iter()
                            .map(|s| {
                                let name = s.path.file_name().unwrap_or_default().to_string_lossy();
                                format!("{name} {} at {}", dotted(&s.version), s.path.display())
                            })
                            .collect();
                        format!("found {}", list.join(", "))
                    };
                    Err(format!(
                        "no Python {} on this machine ({found}); install one or set install.python to a path",
                        spec.text
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names() {
        for n in ["python", "python3", "python3.11", "python3.12"] {
            assert!(is_python_name(n), "{n}");
        }
        for n in [
            "python3-config",
            "python3.11-config",
            "pythonw",
            "python3.",
            "ipython",
        ] {
            assert!(!is_python_name(n), "{n}");
        }
    }
}
