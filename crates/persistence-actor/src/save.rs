//! Saving the runtime's config without losing edits made to the file by hand.
//!
//! mcpvisor remembers what the file held when it last read or wrote it ([`Known`]). Before a
//! write it reads the file again: if someone changed it since, the runtime's changes are merged
//! into the file's current content service by service ([`crate::merge()`]) instead of replacing
//! it. A missing or blank file is simply written.

use std::fs;
use std::io;
use std::path::Path;

use mcpvisor_model::env::Env;
use mcpvisor_model::{parse_str, parse_value, ServicesConfig};

use crate::error::PersistError;
use crate::file::{check_overwritable, write_atomic};
use crate::merge::merge;

/// What the config file held when mcpvisor last read or wrote it, and the runtime's config at
/// that moment (the base of the next merge; it differs from the file's content only where a
/// conflict kept the file's version).
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The file's content, parsed.
    pub on_disk: ServicesConfig,
    /// The runtime's config then.
    pub base: ServicesConfig,
}

impl Known {
    /// Reads the file at `path` as it is now (at start-up). `None` if it is missing, blank or
    /// does not parse (then there is nothing to protect, or writing is refused anyway).
    pub fn read(path: &Path, env: &dyn Env) -> Option<Known> {
        let bytes = fs::read(path).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        if text.trim().is_empty() {
            return None;
        }
        let on_disk = parse_str(text, env).ok()?;
        Some(Known {
            bytes,
            base: on_disk.clone(),
            on_disk,
        })
    }
}

/// What a save did.
#[derive(Debug)]
pub(crate) struct Saved {
    /// The file as it is now.
    pub known: Known,
    /// Whether bytes were written (a merge can leave the file as it is).
    pub wrote: bool,
    /// The file had been edited by hand and the runtime's changes were merged into it.
    pub merged: bool,
    /// Services whose hand edit was kept over a different runtime change.
    pub conflicts: Vec<String>,
}

/// Writes `ours` to `path`, merging it into the file's current content if the file changed
/// since `known`. Never writes over a file that does not parse or validate.
pub(crate) fn save_config(
    path: &Path,
    ours: &ServicesConfig,
    known: Option<&Known>,
    env: &dyn Env,
) -> Result<Saved, PersistError> {
    let disk = match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(PersistError::from_io(path, "read existing file", e)),
    };
    let blank = disk
        .as_ref()
        .is_none_or(|b| b.iter().all(u8::is_ascii_whitespace));
    if blank {
        // Nothing to keep: write the runtime's config as it is.
        return write(path, ours.clone(), ours.clone(), false, Vec::new());
    }
    let disk = disk.unwrap_or_default();
    let (theirs, edited) = match known {
        Some(k) if k.bytes == disk => (k.on_disk.clone(), false),
        _ => {
            check_overwritable(path)?;
            let text = String::from_utf8_lossy(&disk);
            let theirs = parse_str(&text, env).map_err(|errors| PersistError::HandEdit {
                path: path.to_path_buf(),
                message: format!("it does not validate: {errors}"),
            })?;
            (theirs, true)
        }
    };
    let empty = ServicesConfig::default();
    let base = known.map_or(&empty, |k| &k.base);
    let merged = merge(base, ours, &theirs);
    // Cross-service rules (dependencies, names) are checked on the result as a whole.
    let config =
        parse_value(merged.config.to_json(), env).map_err(|errors| PersistError::HandEdit {
            path: path.to_path_buf(),
            message: format!(
                "merging the runtime changes into it gives an invalid config: {errors}"
            ),
        })?;
    if edited && config.to_json() == theirs.to_json() {
        // The file already says everything: leave it exactly as the user wrote it.
        return Ok(Saved {
            known: Known {
                bytes: disk,
                on_disk: theirs,
                base: ours.clone(),
            },
            wrote: false,
            merged: true,
            conflicts: merged.conflicts,
        });
    }
    write(path, config, ours.clone(), edited, merged.conflicts)
}

fn write(
    path: &Path,
    config: ServicesConfig,
    base: ServicesConfig,
    merged: bool,
    conflicts: Vec<String>,
) -> Result<Saved, PersistError> {
    let text = config.to_json_pretty();
    write_atomic(path, text.as_bytes())?;
    Ok(Saved {
        known: Known {
            bytes: text.into_bytes(),
            on_disk: config,
            base,
        },
        wrote: true,
        merged,
        conflicts,
    })
}
