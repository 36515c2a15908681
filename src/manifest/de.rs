//! Deserializing from the position tree: the one parse of the manifest.
//!
//! The manifest text is parsed once, by `span`, into a [`Node`] tree that remembers where
//! every node starts; the structural pass checks that tree, and this module then fills the
//! `raw` structs (and every config, in its compact form or, where something in it is still to
//! be checked, as a `serde_json::Value`) straight from it, borrowing its strings. Parsing the text a second time with a serde YAML parser cost as much again as
//! the first parse and held a second copy of the document; it also meant depending on
//! `serde_yaml`, which is no longer maintained.
//!
//! Scalars resolve as [`Node::scalar_kind`] says (YAML 1.2 core schema): `null`/`~`/empty
//! is null, `true`/`false` booleans, decimal/`0x`/`0o` integers (wider than 64 bits: a
//! float), floats including `.inf`/`.nan`; quoted and block scalars are strings. Where a
//! string is asked for (struct fields, mapping keys), any scalar gives its text, as with
//! serde_yaml. Errors carry the position of the node they concern.

use super::span::{Entry, Node, NodeKind, Pos, ScalarKind};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A deserialization error and, when known, where it happened.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub pos: Option<Pos>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            pos: None,
        }
    }
}

/// Deserializes a `T` from `node`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, Error> {
    T::deserialize(NodeDe(node))
}

/// The JSON value of `node`, as `from_node::<serde_json::Value>` gives it, built directly:
/// every object and list is allocated once at its final size (through serde, maps grow
/// entry by entry, and a config is most of a manifest's memory).
pub fn to_value(node: &Node) -> Result<serde_json::Value, Error> {
    use serde_json::{Map, Number, Value};
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    Ok(match &node.kind {
        NodeKind::Scalar { value, .. } => match node.scalar_kind() {
            Some(ScalarKind::Null) => Value::Null,
            Some(ScalarKind::Bool) => Value::Bool(value.eq_ignore_ascii_case("true")),
            Some(ScalarKind::Int) => match parse_int(value) {
                Some(Int::I(i)) => Value::from(i),
                Some(Int::U(u)) => Value::from(u),
                Some(Int::F(f)) => float(f),
                None => Value::String(value.to_string()),
            },
            Some(ScalarKind::Float) => match parse_float(value) {
                Some(f) => float(f),
                None => Value::String(value.to_string()),
            },
            _ => Value::String(value.to_string()),
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_value).collect::<Result<_, _>>()?),
        NodeKind::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for e in entries {
                let NodeKind::Scalar { value: key, .. } = &e.key.kind else {
                    return Err(Error {
                        message: format!("invalid type: {}, expected a string", e.key.describe()),
                        pos: Some(e.key.pos),
                    });
                };
                map.insert(key.to_string(), to_value(&e.value)?);
            }
            Value::Object(map)
        }
    })
}

/// Writes `node` into a compact config builder, value for value as [`to_value`] would build
/// it, without building the tree; every scalar's and key's text is first passed through
/// `text` (`Ok(Some(new))` replaces it, and a plain scalar's kind is read from the new text,
/// as if it had been written so; `|_| Ok(None)` writes the node as it is). An `Err` from
/// `text` stops the walk with that message at the scalar's position.
pub fn write_config_with<F>(
    node: &Node,
    b: &mut crate::model::ConfigBuilder,
    text: &F,
) -> Result<(), Error>
where
    F: Fn(&str) -> Result<Option<String>, String>,
{
    let replaced = |value: &str, pos: Pos| {
        text(value).map_err(|message| Error {
            message,
            pos: Some(pos),
        })
    };
    match &node.kind {
        NodeKind::Scalar { value, plain } => {
            let new = replaced(value, node.pos)?;
            write_scalar(new.as_deref().unwrap_or(value), *plain, b);
        }
        NodeKind::Seq(items) => {
            b.begin_arr();
            for item in items {
                write_config_with(item, b, text)?;
            }
            b.end_arr();
        }
        NodeKind::Map(entries) => {
            b.begin_obj();
            for e in entries {
                let NodeKind::Scalar { value: key, .. } = &e.key.kind else {
                    return Err(Error {
                        message: format!("invalid type: {}, expected a string", e.key.describe()),
                        pos: Some(e.key.pos),
                    });
                };
                let new = replaced(key, e.key.pos)?;
                b.key(new.as_deref().unwrap_or(key));
                write_config_with(&e.value, b, text)?;
            }
            b.end_obj();
        }
    }
    Ok(())
}

/// Writes a scalar with text `value` (`plain` when not quoted) into a compact config builder,
/// as [`to_value`] would build it.
pub fn write_scalar(value: &str, plain: bool, b: &mut crate::model::ConfigBuilder) {
    match super::span::scalar_kind_of(value, plain) {
        ScalarKind::Null => b.null(),
        ScalarKind::Bool => b.bool(value.eq_ignore_ascii_case("true")),
        ScalarKind::Int => match parse_int(value) {
            Some(Int::I(i)) => match u64::try_from(i) {
                Ok(u) => b.u64(u),
                Err(_) => b.i64(i),
            },
            Some(Int::U(u)) => b.u64(u),
            Some(Int::F(f)) => b.f64(f),
            None => b.str(value),
        },
        ScalarKind::Float => match parse_float(value) {
            Some(f) => b.f64(f),
            None => b.str(value),
        },
        ScalarKind::Str => b.str(value),
    }
}

/// Gives an error without a position the position of `node`.
fn located<T>(node: &Node, r: Result<T, Error>) -> Result<T, Error> {
    r.map_err(|mut e| {
        e.pos.get_or_insert(node.pos);
        e
    })
}

#[derive(Clone, Copy)]
struct NodeDe<'de>(&'de Node);

/// An integer's value: `i64`, else `u64`, else (too wide) `f64`; `None` if it is not one.
enum Int {
    I(i64),
    U(u64),
    F(f64),
}

fn parse_int(v: &str) -> Option<Int> {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let (radix, digits) = if let Some(d) = digits.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = digits.strip_prefix("0o") {
        (8, d)
    } else {
        (10, digits)
    };
    let magnitude = u128::from_str_radix(digits, radix).ok();
    match (negative, magnitude) {
        (false, Some(m)) => Some(match u64::try_from(m) {
            Ok(u) => i64::try_from(u).map_or(Int::U(u), Int::I),
            Err(_) => Int::F(m as f64),
        }),
        (true, Some(m)) => Some(match i64::try_from(m) {
            Ok(i) => Int::I(-i),
            Err(_) if m == 1u128 << 63 => Int::I(i64::MIN),
            Err(_) => Int::F(-(m as f64)),
        }),
        // Beyond even 128 bits: a float, as long as it is decimal.
        (_, None) if radix == 10 => v.parse::<f64>().ok().map(Int::F),
        (_, None) => None,
    }
}

fn parse_float(v: &str) -> Option<f64> {
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    let negative = v.starts_with('-');
    match unsigned {
        ".inf" | ".Inf" | ".INF" if negative => Some(f64::NEG_INFINITY),
        ".inf" | ".Inf" | ".INF" => Some(f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => v.parse::<f64>().ok(),
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let node = self.0;
        let r = match &node.kind {
            NodeKind::Scalar { value, .. } => match node.scalar_kind() {
                Some(ScalarKind::Null) => visitor.visit_unit(),
                Some(ScalarKind::Bool) => visitor.visit_bool(value.eq_ignore_ascii_case("true")),
                Some(ScalarKind::Int) => match parse_int(value) {
                    Some(Int::I(i)) => visitor.visit_i64(i),
                    Some(Int::U(u)) => visitor.visit_u64(u),
                    Some(Int::F(f)) => visitor.visit_f64(f),
                    None => visitor.visit_borrowed_str(value),
                },
                Some(ScalarKind::Float) => match parse_float(value) {
                    Some(f) => visitor.visit_f64(f),
                    None => visitor.visit_borrowed_str(value),
                },
                _ => visitor.visit_borrowed_str(value),
            },
            NodeKind::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        };
        located(node, r)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.scalar_kind() == Some(ScalarKind::Null) {
            located(self.0, visitor.visit_none())
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Scalar { value, .. } => located(self.0, visitor.visit_borrowed_str(value)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A unit variant written as its name.
        match &self.0.kind {
            NodeKind::Scalar { value, .. } => {
                located(self.0, visitor.visit_enum((&**value).into_deserializer()))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct
    }
}

struct Seq<'de> {
    items: std::slice::Iter<'de, Node>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(n) => located(n, seed.deserialize(NodeDe(n))).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'de> {
    entries: std::slice::Iter<'de, Entry>,
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some(e) => {
                self.value = Some(&e.value);
                located(&e.key, seed.deserialize(NodeDe(&e.key))).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a mapping value without its key"))?;
        located(node, seed.deserialize(NodeDe(node)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn value(text: &str) -> Value {
        let docs = super::super::span::parse(text).expect("yaml");
        from_node(&docs.docs[0]).expect("value")
    }

    #[test]
    fn a_compact_config_is_what_the_value_would_be() {
        use crate::model::{ConfigBuilder, ConfigJson};
        let text = "b: [1, -2, 0x1f, 0o17, 18446744073709551615, 123456789012345678901234567890]
a: {y: 2.0, x: [1.5e3, .inf, -.inf, .nan, 1e400, -0.0]}
s: [null, ~, '', true, False, 'quoted 1', \"esc \\t \\u00e9\", plain text, \"${env:X}\"]
nested: {k: [{deep: {deeper: [[]]}}], empty: {}}
";
        let node = &super::super::span::parse(text).expect("yaml").docs[0];
        let mut b = ConfigBuilder::new();
        write_config_with(node, &mut b, &|_| Ok(None)).expect("config");
        assert_eq!((b.max_depth, b.env_reference), (7, true));
        let compact = b.finish();
        let value = to_value(node).expect("value");
        assert_eq!(compact.text(), serde_json::to_string(&value).unwrap());
        assert_eq!(compact.digest(), ConfigJson::from_value(&value).digest());
        assert_eq!(compact.to_value(), value);
    }

    #[test]
    fn scalars_resolve_as_yaml_1_2_core() {
        assert_eq!(
            value("[~, null, '', true, False, 7, -3, 0x1f, 0o17, 1.5, -2e3, 'true', \"7\", abc]"),
            json!([
                null, null, "", true, false, 7, -3, 31, 15, 1.5, -2000.0, "true", "7", "abc"
            ])
        );
        assert_eq!(value("18446744073709551615"), json!(u64::MAX));
        assert_eq!(value("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(value("36893488147419103232"), json!(36893488147419103232.0));
        assert_eq!(value(".inf"), Value::Null, "JSON has no infinity");
    }

    #[test]
    fn values_are_built_as_serde_would_build_them() {
        let text = "a: [~, true, FALSE, 7, -3, 0x1f, 0o17, 1.5, -2e3, .inf, .nan, 'true', \"7\", abc]
b: {2: x, true: y, c: [1, [2, {d: e}]]}
n: [18446744073709551615, -9223372036854775808, 36893488147419103232, 0xffffffffffffffffffffffffffffffffff]
s: |
  block
";
        let docs = super::super::span::parse(text).expect("yaml");
        let direct = to_value(&docs.docs[0]).expect("value");
        assert_eq!(direct, value(text));
        let keys: Vec<&str> = direct["b"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["2", "true", "c"]);
        let docs = super::super::span::parse("? [a]\n: b\n").expect("yaml");
        let e = to_value(&docs.docs[0]).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.pos),
            (
                "invalid type: a list, expected a string",
                Some(Pos::new(1, 3))
            )
        );
    }

    #[test]
    fn mappings_keep_order_and_keys_are_text() {
        let v = value("b: 1\na: { 2: x, true: y }\nc: [1, [2]]\n");
        assert_eq!(
            v,
            json!({"b": 1, "a": {"2": "x", "true": "y"}, "c": [1, [2]]})
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn errors_name_the_node() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            n: i64,
        }
        let docs = super::super::span::parse("n: 1\nm: 2\n").unwrap();
        let e = from_node::<S>(&docs.docs[0]).unwrap_err();
        assert!(e.message.contains("unknown field `m`"), "{e}");
        assert_eq!(e.pos, Some(Pos::new(2, 1)));
        let docs = super::super::span::parse("n: [1]\n").unwrap();
        let e = from_node::<S>(&docs.docs[0]).unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(1, 4)));
    }
}
