//! `${VAR}`, `${VAR:-default}` and `${file:PATH}` expansion over an injectable environment.

use std::collections::HashMap;

/// Where variable values come from. Tests pass a [`MapEnv`]; programs pass [`ProcessEnv`].
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;

    /// The contents of the secret file at `path` (`${file:PATH}`, `env_file`): refused, in
    /// words, when anybody but its owner may read it. By default the real file
    /// ([`read_secret`]).
    fn secret_file(&self, path: &str) -> Result<String, String> {
        read_secret(path)
    }
}

/// The contents of the file at `path` (`~/` is the home folder), if only its owner may read
/// or write it (mode 600 or 400): a secret readable by others is refused, not used.
pub fn read_secret(path: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let full = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(path),
    };
    let meta = std::fs::metadata(&full).map_err(|e| format!("cannot read '{path}': {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "'{path}' may be read by others (mode {mode:o}): make it its owner's alone \
             (chmod 600 '{path}')"
        ));
    }
    std::fs::read_to_string(&full).map_err(|e| format!("cannot read '{path}': {e}"))
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed environment (for tests and embedding).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// An environment with these pairs.
    pub fn from_pairs<const N: usize>(pairs: [(&str, &str); N]) -> Self {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` with `NAME` unset and no default.
    Undefined(String),
    /// Unclosed `${`, or an empty or invalid name.
    Syntax,
    /// `${file:PATH}` whose file cannot be used (why, in words).
    File(String),
}

/// Expands every `${NAME}` and `${NAME:-default}` in `input`. `$` not followed by `{` is kept
/// as is; `$${` writes a literal `${`. An unset variable with a default — or set to the empty
/// string, as in POSIX shells' `:-` — takes the default.
///
/// ```
/// use mcpvisor_model::env::{expand, MapEnv};
/// let env = MapEnv::from_pairs([("HOST", "db")]);
/// assert_eq!(expand("${HOST}:${PORT:-5432}", &env).unwrap(), "db:5432");
/// ```
pub fn expand(input: &str, env: &dyn Env) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body_start.find('}').ok_or(ExpandError::Syntax)?;
        let body = &body_start[..end];
        if let Some(path) = body.strip_prefix("file:") {
            if path.is_empty() {
                return Err(ExpandError::Syntax);
            }
            let secret = env.secret_file(path).map_err(ExpandError::File)?;
            // A file's one trailing line end is not part of the secret.
            let secret = secret.strip_suffix('\n').unwrap_or(&secret);
            out.push_str(secret.strip_suffix('\r').unwrap_or(secret));
            rest = &body_start[end + 1..];
            continue;
        }
        let (name, default) = match body.find(":-") {
            Some(i) => (&body[..i], Some(&body[i + 2..])),
            None => (body, None),
        };
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(ExpandError::Syntax);
        }
        match (env.var(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(ExpandError::Undefined(name.to_owned())),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MapEnv {
        MapEnv::from_pairs([("A", "1"), ("EMPTY", ""), ("TOKEN", "s3cret")])
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand("x${A}y", &env()).unwrap(), "x1y");
        assert_eq!(expand("${B:-two}", &env()).unwrap(), "two");
        assert_eq!(expand("${EMPTY:-d}", &env()).unwrap(), "d");
        assert_eq!(expand("${A:-d}", &env()).unwrap(), "1");
        assert_eq!(expand("${B:-}", &env()).unwrap(), "");
        assert_eq!(expand("Bearer ${TOKEN}", &env()).unwrap(), "Bearer s3cret");
    }

    #[test]
    fn keeps_plain_dollars_and_escapes() {
        assert_eq!(expand("$A $ 5$", &env()).unwrap(), "$A $ 5$");
        assert_eq!(expand("$${A}", &env()).unwrap(), "${A}");
    }

    #[test]
    fn unset_without_default_is_an_error_naming_it() {
        assert_eq!(
            expand("${NOPE}", &env()),
            Err(ExpandError::Undefined("NOPE".into()))
        );
    }

    #[test]
    fn malformed_references_are_syntax_errors() {
        for bad in ["${A", "${}", "${1A}", "${A-B}", "${:-x}"] {
            assert_eq!(expand(bad, &env()), Err(ExpandError::Syntax), "{bad}");
        }
    }
}
