//! Atomic file writes and config loading, usable without the actor.
//!
//! [`write_atomic`] is the only way this crate writes a file: a reader (or a crash, or a
//! `kill -9`) sees the old version or the new one, never a mix, and the old one is kept as
//! `<file>.bak`. [`check_overwritable`] guards the config file: a file that does not parse is
//! never replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mcpvisor_model::env::Env;
use mcpvisor_model::ServicesConfig;

use crate::error::{LoadError, PersistError};

/// Makes temp names unique within this process (the pid makes them unique across processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The path of the backup kept beside `path`: `<file>.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// Whether `name` is one of the temp files [`write_atomic`] creates for the file `target_name`
/// (a `kill -9` can leave them behind; they are never read).
pub fn is_temp_file_of(name: &str, target_name: &str) -> bool {
    let data = format!(".{target_name}.tmp.");
    let bak = format!(".{target_name}.bak.tmp.");
    name.starts_with(&data) || name.starts_with(&bak)
}

fn temp_sibling(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{kind}.{}.{n}", std::process::id()))
}

/// Removes its path on drop unless disarmed: the temp files of a failed write never stay.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Removes the temp files that writers of `path` killed mid-write left behind (see
/// [`is_temp_file_of`]), skipping those of processes still running. Returns how many were
/// removed. Best effort: errors are ignored. Only where `/proc` tells which processes run.
pub fn remove_stale_temp_files(path: &Path) -> usize {
    let target = resolve_symlink(path);
    let (Some(name), Some(dir)) = (target.file_name().and_then(|n| n.to_str()), target.parent())
    else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !is_temp_file_of(file_name, name) {
            continue;
        }
        // `.<name>.tmp.<pid>.<n>` or `.<name>.bak.tmp.<pid>.<n>`: the pid is second to last.
        let pid = file_name
            .rsplit('.')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        let alive = match pid {
            Some(pid) => Path::new("/proc").join(pid.to_string()).exists(),
            None => true,
        };
        if !alive && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes `bytes` to `path` so that the file is always one whole version:
///
/// 1. write a temp file in the same directory (`.<name>.tmp.<pid>.<n>`) and fsync it;
/// 2. keep the current file as `<name>.bak` (hard link, or copy, into a temp name, then rename);
/// 3. rename the temp file over `path`;
/// 4. fsync the directory.
///
/// A symbolic link at `path` is followed: the file it points to is replaced and the link kept.
/// An existing file's permissions are kept. On any error the temp files are removed and `path`
/// is left untouched. The directory must exist.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("mcp.json");
/// mcpvisor_persistence_actor::write_atomic(&path, b"{}\n").unwrap();
/// mcpvisor_persistence_actor::write_atomic(&path, b"{\"mcpServers\": {}}\n").unwrap();
/// assert_eq!(std::fs::read(dir.path().join("mcp.json.bak")).unwrap(), b"{}\n");
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), PersistError> {
    let given = path.as_ref();
    let target = resolve_symlink(given);
    let err = |op: &'static str| move |e: io::Error| PersistError::from_io(given, op, e);

    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PersistError::Io {
            path: given.to_path_buf(),
            op: "find the file name",
            source: io::Error::new(io::ErrorKind::InvalidInput, "path has no UTF-8 file name"),
        })?
        .to_owned();
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(err("inspect existing file")(e)),
    };

    // 1. The new version, durable under a temp name.
    let tmp = temp_sibling(&dir, &name, "tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(err("create temp file"))?;
    let mut tmp_guard = TempGuard(Some(tmp.clone()));
    file.write_all(bytes).map_err(err("write temp file"))?;
    if let Some(m) = &existing {
        file.set_permissions(m.permissions())
            .map_err(err("copy permissions to temp file"))?;
    }
    file.sync_all().map_err(err("fsync temp file"))?;
    drop(file);

    // 2. The previous version, kept as `.bak` (also replaced atomically).
    if existing.is_some() {
        let bak_tmp = temp_sibling(&dir, &name, "bak.tmp");
        let mut bak_guard = TempGuard(Some(bak_tmp.clone()));
        if fs::hard_link(&target, &bak_tmp).is_err() {
            // No hard links here (some file systems): copy instead.
            let _ = fs::remove_file(&bak_tmp);
            fs::copy(&target, &bak_tmp).map_err(err("copy current file to backup"))?;
            File::open(&bak_tmp)
                .and_then(|f| f.sync_all())
                .map_err(err("fsync backup"))?;
        }
        fs::rename(&bak_tmp, backup_path(&target)).map_err(err("rename backup into place"))?;
        bak_guard.disarm();
    }

    // 3. The switch: one rename.
    fs::rename(&tmp, &target).map_err(err("rename temp file over target"))?;
    tmp_guard.disarm();

    // 4. Make the rename durable. The new content is in place whatever happens here, so a
    // failure is logged rather than returned (a retry would only rotate `.bak` again).
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::warn!(path = %given.display(), error = %e, "fsync of the directory failed after an atomic write");
    }
    Ok(())
}

/// `path`, or the file it points to if it is a symbolic link.
fn resolve_symlink(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or_else(|_| {
            // A dangling link: write where it points.
            match fs::read_link(path) {
                Ok(to) if to.is_absolute() => to,
                Ok(to) => path.parent().unwrap_or(Path::new(".")).join(to),
                Err(_) => path.to_path_buf(),
            }
        }),
        _ => path.to_path_buf(),
    }
}

/// Checks that the file at `path` may be replaced: it is missing, blank, or valid JSON. A file
/// that does not parse returns [`PersistError::Unparseable`] with the line and column of the
/// first error, and must not be overwritten — the user fixes it by hand.
pub fn check_overwritable(path: &Path) -> Result<(), PersistError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PersistError::from_io(path, "read existing file", e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    parse_existing::<serde::de::IgnoredAny>(path, &bytes).map(|_| ())
}

/// Decodes the existing file's `bytes` (read from `path`); a file that does not parse is
/// [`PersistError::Unparseable`] with the line and column of the first error.
pub(crate) fn parse_existing<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<T, PersistError> {
    serde_json::from_slice(bytes).map_err(|e| PersistError::Unparseable {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e),
    })
}

/// serde_json's message without its trailing " at line L column C".
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Writes `config` to `path` as a standard `mcpServers` file (pretty JSON, services as
/// written), unless the existing file does not parse ([`check_overwritable`]).
pub fn write_config(path: &Path, config: &ServicesConfig) -> Result<(), PersistError> {
    check_overwritable(path)?;
    write_atomic(path, config.to_json_pretty().as_bytes())
}

/// Reads and parses the config file at `path`, expanding `${VAR}`s from `env`.
///
/// A missing file is [`LoadError::NotFound`] (callers treat it as an empty config); a blank
/// file is an empty config; a file that does not parse or validate is [`LoadError::Config`],
/// whose syntax errors carry line and column.
pub fn load_config(path: &Path, env: &dyn Env) -> Result<ServicesConfig, LoadError> {
    crate::save::load_config_known(path, env).map(|(config, _)| config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_path_appends_bak() {
        assert_eq!(
            backup_path(Path::new("/a/mcp.json")),
            PathBuf::from("/a/mcp.json.bak")
        );
    }

    #[test]
    fn temp_names_are_recognised() {
        let dir = Path::new("/d");
        let t = temp_sibling(dir, "mcp.json", "tmp");
        let b = temp_sibling(dir, "mcp.json", "bak.tmp");
        for p in [t, b] {
            let n = p.file_name().unwrap().to_str().unwrap();
            assert!(is_temp_file_of(n, "mcp.json"), "{n}");
            assert!(!is_temp_file_of(n, "state.json"), "{n}");
        }
        assert!(!is_temp_file_of("mcp.json", "mcp.json"));
        assert!(!is_temp_file_of("mcp.json.bak", "mcp.json"));
    }

    #[test]
    fn first_write_creates_the_file_and_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert!(!backup_path(&p).exists());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }

    #[test]
    fn failed_write_leaves_target_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        // The backup name is taken by a non-empty directory: rotating the backup fails.
        fs::create_dir(backup_path(&p)).unwrap();
        fs::write(backup_path(&p).join("x"), b"x").unwrap();
        let err = write_atomic(&p, b"two").unwrap_err();
        assert!(err.to_string().contains("f.json"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"one");
        let temps = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| is_temp_file_of(e.file_name().to_str().unwrap(), "f.json"))
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mcp.json");
        fs::write(&p, b"whole").unwrap();
        // Above any Linux pid_max, so never a live process.
        let dead = dir.path().join(".mcp.json.tmp.99999999.3");
        let dead_bak = dir.path().join(".mcp.json.bak.tmp.99999999.4");
        let live = dir
            .path()
            .join(format!(".mcp.json.tmp.{}.5", std::process::id()));
        let other = dir.path().join(".state.json.tmp.99999999.6");
        for f in [&dead, &dead_bak, &live, &other] {
            fs::write(f, b"part").unwrap();
        }
        assert_eq!(remove_stale_temp_files(&p), 2);
        assert!(!dead.exists() && !dead_bak.exists());
        assert!(live.exists() && other.exists());
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn symlinks_are_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("mcp.json");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(fs::read(backup_path(&real)).unwrap(), b"old");
    }

    #[test]
    fn existing_permissions_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn overwritable_unless_the_file_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mcp.json");
        assert!(check_overwritable(&p).is_ok(), "missing");
        fs::write(&p, "  \n").unwrap();
        assert!(check_overwritable(&p).is_ok(), "blank");
        fs::write(&p, "{\"a\": 1}").unwrap();
        assert!(check_overwritable(&p).is_ok(), "valid");
        fs::write(&p, "{\n  \"a\": 1,\n  oops\n}").unwrap();
        match check_overwritable(&p) {
            Err(PersistError::Unparseable {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (3, 3));
                assert!(!message.contains(" at line "), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_config_distinguishes_missing_blank_and_broken() {
        let env = mcpvisor_model::env::MapEnv::default();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mcp.json");
        assert!(matches!(
            load_config(&p, &env),
            Err(LoadError::NotFound { .. })
        ));
        fs::write(&p, "\n").unwrap();
        assert_eq!(load_config(&p, &env).unwrap(), ServicesConfig::default());
        fs::write(&p, "{\"mcpServers\": {\"a\": {\"command\": \"x\"},}}").unwrap();
        match load_config(&p, &env) {
            Err(LoadError::Config { errors, .. }) => match errors.first() {
                Some(mcpvisor_model::ConfigError::Syntax { line, column, .. }) => {
                    assert_eq!((*line, *column), (1, 39));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}
