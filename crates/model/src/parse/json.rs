//! JSON text → value, with duplicate keys caught (a custom visitor) and positions kept.

use super::*;

pub(super) fn parse_json_checked(text: &str) -> Result<(Value, Vec<Dup>), ConfigErrors> {
    let dups: Dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        path: Vec::new(),
        dups: &dups,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|_| v))
    .map_err(|e| ConfigError::Syntax {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    Ok((value, dups.into_inner()))
}

pub(super) fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

pub(super) struct ValueSeed<'a> {
    path: Vec<String>,
    dups: &'a Dups,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0usize;
        loop {
            let mut path = self.path.clone();
            path.push(i.to_string());
            match seq.next_element_seed(ValueSeed {
                path,
                dups: self.dups,
            })? {
                Some(v) => out.push(v),
                None => break,
            }
            i += 1;
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut path = self.path.clone();
            path.push(key.clone());
            let v = map.next_value_seed(ValueSeed {
                path,
                dups: self.dups,
            })?;
            if out.insert(key.clone(), v).is_some() {
                self.dups.borrow_mut().push((self.path.clone(), key));
            }
        }
        Ok(Value::Object(out))
    }
}

/// A duplicate key: the path of the object holding it, and the key.
pub(super) type Dup = (Vec<String>, String);
pub(super) type Dups = RefCell<Vec<Dup>>;
