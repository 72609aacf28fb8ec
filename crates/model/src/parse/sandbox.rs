//! The `sandbox` section of a stdio service, field by field.

use super::fields::Section;
use super::*;

const KEYS: &[&str] = &[
    "filesystem",
    "network",
    "memory",
    "processes",
    "cpu",
    "open_files",
    "best_effort",
];

/// Reads `sandbox` of the service `f` reads.
pub(super) fn sandbox(f: &mut fields::Fields<'_>) -> Sandbox {
    let mut sec = Section::open(f, "sandbox", KEYS);
    let network = match sec.obj.get("network").cloned() {
        None | Some(Value::Null) => Network::Any,
        Some(Value::String(n)) if n == "any" => Network::Any,
        Some(Value::String(n)) if n == "loopback" => Network::Loopback,
        Some(Value::String(n)) if n == "none" => Network::None,
        Some(other) => {
            let field = sec.field("network");
            sec.f.invalid(
                &field,
                "\"none\" (no network at all), \"loopback\" (a loopback of its own) or \"any\"",
                &other,
            );
            Network::Any
        }
    };
    let filesystem = filesystem(&mut sec);
    let memory = match sec.obj.get("memory").cloned() {
        None | Some(Value::Null) => None,
        Some(v) => {
            let parsed = match &v {
                Value::String(s) => parse_bytes(s),
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            match parsed {
                Some(b) if b >= 1024 * 1024 => Some(b),
                _ => {
                    let field = sec.field("memory");
                    sec.f.invalid(
                        &field,
                        "a size of at least 1 MiB, such as \"512MiB\", \"2GiB\" or a number of bytes",
                        &v,
                    );
                    None
                }
            }
        }
    };
    let processes = count(&mut sec, "processes");
    let open_files = count(&mut sec, "open_files");
    let cpu_millis = match sec.obj.get("cpu").cloned() {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if (0.01..=4096.0).contains(&c) => Some((c * 1000.0).round() as u64),
            _ => {
                let field = sec.field("cpu");
                sec.f.invalid(
                    &field,
                    "a number of cores from 0.01 up, such as 0.5 (half a core) or 2",
                    &v,
                );
                None
            }
        },
    };
    let best_effort = match sec.obj.get("best_effort").cloned() {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            let field = sec.field("best_effort");
            sec.f.invalid(&field, "true or false", &other);
            false
        }
    };
    Sandbox {
        filesystem,
        network,
        memory,
        processes,
        cpu_millis,
        open_files,
        best_effort,
    }
}

/// A whole number of at least 1 (`sandbox.KEY`).
fn count(sec: &mut Section<'_, '_>, key: &str) -> Option<u64> {
    match sec.obj.get(key).cloned() {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => n.as_u64(),
        Some(other) => {
            let field = sec.field(key);
            sec.f
                .invalid(&field, "a whole number of at least 1", &other);
            None
        }
    }
}

/// `sandbox.filesystem`: `read`, `write` (lists of paths) and `presets` (names).
fn filesystem(sec: &mut Section<'_, '_>) -> Option<Filesystem> {
    let obj = match sec.obj.get("filesystem").cloned() {
        None | Some(Value::Null) => return None,
        Some(Value::Object(m)) => m,
        Some(other) => {
            let field = sec.field("filesystem");
            sec.f.invalid(
                &field,
                "an object with 'read', 'write' and 'presets' lists",
                &other,
            );
            return None;
        }
    };
    let mut fs = Filesystem::default();
    for (k, v) in &obj {
        let field = format!("{}.{k}", sec.field("filesystem"));
        let items = match v {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            other => {
                sec.f.invalid(&field, "a list", other);
                continue;
            }
        };
        match k.as_str() {
            "read" | "write" => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{field}[{i}]");
                    match item {
                        Value::String(p) if !p.trim().is_empty() => {
                            if let Some(p) = sec.f.expand(&at, p) {
                                let list = if k == "read" {
                                    &mut fs.read
                                } else {
                                    &mut fs.write
                                };
                                list.push(PathBuf::from(p));
                            }
                        }
                        other => sec.f.invalid(&at, "a path", other),
                    }
                }
            }
            "presets" => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{field}[{i}]");
                    match item
                        .as_str()
                        .and_then(|n| Preset::ALL.iter().find(|(name, _)| *name == n))
                    {
                        Some((_, p)) if !fs.presets.contains(p) => fs.presets.push(*p),
                        Some(_) => {}
                        None => {
                            let names: Vec<&str> = Preset::ALL.iter().map(|(n, _)| *n).collect();
                            sec.f
                                .invalid(&at, &format!("one of {}", names.join(", ")), item);
                        }
                    }
                }
            }
            _ => sec.f.errors.push(ConfigError::InvalidValue {
                service: sec.f.service.to_owned(),
                field,
                expected: "one of: read, write, presets".into(),
                found: format!("unknown key '{k}'"),
            }),
        }
    }
    Some(fs)
}

/// "512MiB", "512 MB", "2G", "1048576": bytes (K, M, G, T in powers of 1024, with or without
/// "i" and "B"; case does not matter).
pub(crate) fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_in_powers_of_1024() {
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("512 MB"), Some(512 << 20));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("5 parsecs"), None);
    }
}
