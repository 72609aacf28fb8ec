//! Saving the runtime's config without losing edits made to the file by hand.
//!
//! mcpvisor remembers what the file held when it last read or wrote it ([`KnownConfig`], kept
//! in a [`KnownCell`] that outlives a respawned actor). Before a write it reads the file again:
//! if someone changed it since, the runtime's changes are merged into the file's current
//! content service by service ([`crate::merge()`]) instead of replacing it. A file that is
//! empty or missing although mcpvisor last saw content is given a moment to settle (an editor
//! truncating before it writes); still empty or missing after that, it is written in full.
//!
//! An edit made between the re-read and the rename is not merged; it is in `<file>.bak`.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpvisor_model::env::Env;
use mcpvisor_model::{parse_value, ConfigError, ConfigErrors, ServicesConfig};
use serde_json::Value;

use crate::error::{LoadError, PersistError};
use crate::file::{parse_existing, write_atomic};
use crate::merge::merge;

/// How long a file found empty or missing (while mcpvisor last saw content in it) is given to
/// get its content back before it is written in full.
pub const SETTLE: Duration = mcpvisor_model::defaults::PERSIST_SETTLE;

/// What the config file held when mcpvisor last read or wrote it, and the runtime's config at
/// that moment (the base of the next merge; it differs from the file's content only where a
/// conflict kept the file's version). Build one with [`load_config_known`].
#[derive(Debug, Clone)]
pub struct KnownConfig {
    bytes: Vec<u8>,
    on_disk: ServicesConfig,
    base: ServicesConfig,
}

/// Where the persistence actor keeps its [`KnownConfig`]; the owner (the root supervisor)
/// passes the same cell to a respawned actor so nothing is forgotten.
pub type KnownCell = Arc<Mutex<Option<KnownConfig>>>;

/// Reads and parses the config file like [`crate::load_config`], and also returns what the
/// persistence actor must know about it to protect later hand edits (`None` for a blank file).
pub fn load_config_known(
    path: &Path,
    env: &dyn Env,
) -> Result<(ServicesConfig, Option<KnownConfig>), LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LoadError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| LoadError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    if text.trim().is_empty() {
        return Ok((ServicesConfig::default(), None));
    }
    let config = mcpvisor_model::parse_str(text, env).map_err(|errors| LoadError::Config {
        path: path.to_path_buf(),
        errors,
    })?;
    let known = KnownConfig {
        bytes,
        on_disk: config.clone(),
        base: config.clone(),
    };
    Ok((config, Some(known)))
}

impl KnownConfig {
    /// Reads the file at `path` as it is now (for an actor spawned on its own). `None` if it
    /// is missing, blank or does not parse.
    pub(crate) fn read(path: &Path, env: &dyn Env) -> Option<KnownConfig> {
        load_config_known(path, env).ok()?.1
    }
}

/// Parses `value` for merging: structure and every rule, but a `${VAR}` that mcpvisor's
/// environment does not define is no error (the file may be meant for another environment;
/// only raw objects are written back). Such variables are expanded to placeholders.
fn parse_for_merge(value: Value, env: &dyn Env) -> Result<ServicesConfig, ConfigErrors> {
    let errors = match parse_value(value.clone(), env) {
        Ok(config) => return Ok(config),
        Err(errors) => errors,
    };
    let only_undefined = errors
        .0
        .iter()
        .all(|e| matches!(e, ConfigError::UndefinedVariable { .. }));
    if only_undefined {
        // "0" fits most places (`http://${HOST}:${PORT}/mcp`); "http://0" a whole `${URL}`.
        for placeholder in ["0", "http://0"] {
            if let Ok(config) = parse_value(value.clone(), &Placeholder { env, placeholder }) {
                return Ok(config);
            }
        }
    }
    Err(errors)
}

/// `env`, with every variable it lacks set to `placeholder`.
struct Placeholder<'a> {
    env: &'a dyn Env,
    placeholder: &'static str,
}

impl Env for Placeholder<'_> {
    fn var(&self, name: &str) -> Option<String> {
        Some(
            self.env
                .var(name)
                .unwrap_or_else(|| self.placeholder.to_owned()),
        )
    }

    fn secret_file(&self, path: &str) -> Result<String, String> {
        Ok(self
            .env
            .secret_file(path)
            .unwrap_or_else(|_| self.placeholder.to_owned()))
    }
}

/// What a save did.
#[derive(Debug)]
pub(crate) struct Saved {
    /// The file as it is now.
    pub known: KnownConfig,
    /// Whether bytes were written (a merge can leave the file as it is).
    pub wrote: bool,
    /// The file had been edited by hand and the runtime's changes were merged into it.
    pub merged: bool,
    /// Services whose hand edit was kept over a different runtime change.
    pub conflicts: Vec<String>,
}

fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PersistError::from_io(path, "read existing file", e)),
    }
}

/// Writes `ours` to `path`, merging it into the file's current content if the file changed
/// since `known`. Never writes over a file that does not parse or validate. Blocking (may
/// wait [`SETTLE`]).
pub(crate) fn save_config(
    path: &Path,
    ours: &ServicesConfig,
    known: Option<&KnownConfig>,
    env: &dyn Env,
) -> Result<Saved, PersistError> {
    let mut disk = read_existing(path)?;
    if disk.is_none() && known.is_some() {
        // Content was there: an editor may be between truncating and writing.
        std::thread::sleep(SETTLE);
        disk = read_existing(path)?;
    }
    let Some(disk) = disk else {
        // Nothing to keep: write the runtime's config as it is.
        return write(path, ours.clone(), ours.clone(), false, Vec::new());
    };
    let (theirs, edited) = match known {
        Some(k) if k.bytes == disk => (k.on_disk.clone(), false),
        _ => {
            let value: Value = parse_existing(path, &disk)?;
            let theirs = parse_for_merge(value, env).map_err(|errors| PersistError::HandEdit {
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
        parse_for_merge(merged.config.to_json(), env).map_err(|errors| PersistError::HandEdit {
            path: path.to_path_buf(),
            message: format!(
                "merging the runtime changes into it gives an invalid config: {errors}"
            ),
        })?;
    if config.to_json() == theirs.to_json() {
        // The file already says everything: leave it exactly as it is.
        return Ok(Saved {
            known: KnownConfig {
                bytes: disk,
                on_disk: theirs,
                base: ours.clone(),
            },
            wrote: false,
            merged: edited,
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
        known: KnownConfig {
            bytes: text.into_bytes(),
            on_disk: config,
            base,
        },
        wrote: true,
        merged,
        conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::env::MapEnv;
    use serde_json::json;

    #[test]
    fn variables_unset_here_do_not_make_a_file_unmergeable() {
        let env = MapEnv::default();
        for doc in [
            json!({"mcpServers": {"a": {"command": "${BIN}", "env": {"T": "${TOKEN}"}}}}),
            json!({"mcpServers": {"r": {"url": "http://${HOST}:${PORT}/mcp"}}}),
            json!({"mcpServers": {"r": {"url": "${URL}"}}}),
        ] {
            let c = parse_for_merge(doc.clone(), &env).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert_eq!(c.to_json(), doc, "raw kept as written");
        }
        // Real errors still count, with or without unset variables beside them.
        let bad = json!({"mcpServers": {"a": {"command": "${BIN}", "url": "http://x"}}});
        assert!(parse_for_merge(bad, &env).is_err());
    }
}
