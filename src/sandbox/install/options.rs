//! The server's `install` options as the install and `check` use them: what
//! makes an install "the same" (`requested`), the Python it is made with
//! (`python_for`), and the line (or error) `check`, `doctor` and `add` show.

use super::{interp, npm, package_of, Picked};
use crate::sandbox::profile;
use crate::sandbox::runner::{Kind, Package};

/// What an install of `pkg` for this server is made of: the package and the
/// server's `install` options. A change to either means a new install.
pub fn requested(spec: &crate::config::StdioSpec, pkg: &Package) -> String {
    format!("{}{}", pkg.identity(), spec.install.identity())
}

/// The interpreter a Python install of this server would use, when its
/// `install.python` asks for one (`Ok(None)`: the runner's own choice).
/// The error is ready for the operator: it names the config path.
pub fn python_for(
    server: &str,
    spec: &crate::config::StdioSpec,
    pkg: &Package,
) -> Result<Option<Picked>, String> {
    let Some(want) = &spec.install.python else {
        return Ok(None);
    };
    let at = format!("mcpServers.{server}.install.python");
    if pkg.kind == Kind::Npm {
        return Err(format!(
            "{at}: only applies to Python runners (uvx, uv tool run, pipx run), not {}",
            pkg.runner
        ));
    }
    let path = spec
        .env
        .get("PATH")
        .cloned()
        .unwrap_or_else(profile::inherited_path);
    interp::pick(want, &path)
        .map(Some)
        .map_err(|e| format!("{at}: {e}"))
}

/// `check` and `doctor`: for a package-runner server with `install`
/// options, a line on what its install will use; `Err` names what cannot
/// work. `None` for other servers.
pub fn check(server: &str, spec: &crate::config::StdioSpec) -> Option<Result<String, String>> {
    if spec.install.is_default() {
        return None;
    }
    let pkg = match package_of(spec) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Some(Err(format!("mcpServers.{server}: {e}"))),
        None => {
            return Some(Err(format!(
                "mcpServers.{server}.install: only applies to a package runner (uvx, uv tool run, pipx run, npx, npm exec)"
            )))
        }
    };
    if pkg.kind == Kind::Npm {
        if let Err(e) = npm::overrides(&spec.install.overrides) {
            return Some(Err(format!("mcpServers.{server}.install.{e}")));
        }
    }
    let mut line = String::new();
    match python_for(server, spec, &pkg) {
        Err(e) => return Some(Err(e)),
        Ok(Some(p)) => line.push_str(&format!(
            "python {} at {} ({})",
            p.version,
            p.path.display(),
            p.why
        )),
        Ok(None) => {}
    }
    if !spec.install.overrides.is_empty() {
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&format!("overrides {}", spec.install.overrides.join(", ")));
    }
    Some(Ok(line))
}
