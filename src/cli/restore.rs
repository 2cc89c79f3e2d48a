//! `restore`: list the backups the changing commands keep, or put one back.
//! A restore is itself a change like any other: validated as a whole first,
//! written atomically with its own backup (so it can be undone), then reloaded.

use super::ctx::Ctx;
use super::edit::commit;
use super::out;
use crate::config::edit;
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (without it: list the backups)
    pub backup: Option<String>,
    /// Print the change; write nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> anyhow::Result<bool> {
    let Some(id) = a.backup else {
        let all = edit::backups(&ctx.config)?;
        if ctx.json() {
            out::json(&json!({"backups": all.iter().map(|b| json!({
                "id": b.id, "created": b.manifest.created, "operation": b.manifest.operation,
                "server": b.manifest.server, "files": b.manifest.files,
            })).collect::<Vec<_>>()}));
        } else if all.is_empty() {
            println!("no backups in {}", edit::backup_dir(&ctx.config).display());
        } else {
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        b.manifest.operation.clone(),
                        b.manifest.server.clone(),
                        b.manifest
                            .files
                            .iter()
                            .map(|f| {
                                format!(
                                    "{}{}",
                                    f.path.display(),
                                    if f.copy.is_none() { " (absent)" } else { "" }
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            print!(
                "{}",
                out::table(&["BACKUP", "TAKEN BEFORE", "SERVER", "FILES"], &rows)
            );
            println!("restore one with: mcp-hub restore BACKUP");
        }
        return Ok(true);
    };
    let lock = ctx.lock(a.dry_run)?;
    let b = edit::backup(&ctx.config, &id)?;
    let files = ctx.files()?;
    let changes = b.contents(&ctx.config)?;
    let Some((backup, reloaded, _)) = commit(
        ctx,
        lock,
        &files,
        "restore",
        &b.manifest.server,
        changes,
        a.dry_run,
    )?
    else {
        return Ok(true);
    };
    if ctx.json() {
        out::json(
            &json!({"ok": true, "restored": id, "backup": backup, "reload": reloaded.describe()}),
        );
    } else {
        println!("restored {id} (the state it replaced is backup {backup})");
    }
    Ok(true)
}
