//! The compact config form: a part's or fragment's config as JSON text plus a digest.
//!
//! A config is kept as its compact JSON text (no spaces, keys in the order written, numbers
//! as `serde_json` writes them) in an `Arc<str>`, together with a SHA-256 digest of its
//! *canonical* form, computed once when it is built. Canonical means what config equality
//! has always meant here: object keys sorted, integral numbers written as integers (`1`,
//! `1.0` and `1e0` are one number), strings by their decoded text (`"\u0041"` is `"A"`), and
//! the top-level `fragments` key left out (a part's imports are compared by meaning, on their
//! own; see `crate::plan::canonical`). Two configs are equal for planning exactly when their
//! digests are, so a no-op plan compares two 32-byte arrays per part instead of walking two
//! trees. The byte range of the top-level `fragments` value is kept too, so a part's imports
//! are read by parsing only that slice.
//!
//! The structured `serde_json::Value` is produced on demand ([`ConfigJson::to_value`],
//! parsed from the text, key order as written) only where a change is shown, diffed, merged
//! with `ignore` pointers or fragment imports, exported or sent. A `Value` of a config with
//! nested attributes takes about ten times its text (each map entry, string and vector is
//! its own allocation); the text takes about what the YAML did, so a fleet's configs are held
//! once and small, desired and observed alike.
//!
//! Why text and a digest rather than an interned or arena tree: every consumer other than
//! comparison wants either a `Value` (rarely, per changed part) or the text itself (sending,
//! saving), and comparison wants one pass and no tree. The digest is taken over a canonical
//! byte string built in the same pass that writes the text (each object's entries are
//! written, then reordered by key inside one scratch buffer), so no second walk and no
//! per-config tree is ever held. SHA-256 makes an accidental match of different configs
//! impossible in practice, so equality needs no fallback comparison.
//!
//! Where it is used: every desired config (`Config::json`, parts and fragments) and every
//! observed part config (`Part::config`). Observed fragments keep a `serde_json::Value`:
//! an organization has tens of them, not thousands, and the rollout lease record is read and
//! written inside a fragment's config as a value.
//!
//! Measured on the realistic M fleet (2,000 parts of 1.5–3 KB, 20 fragments; release build):
//! the configs the loaded model holds went from about 45 MB (as `Value`s) to about 5 MB, the
//! load's heap peak from 54.6 MB to 40.8 MB (now the position tree's, before any config is
//! built) with a sixth fewer allocations and about the same time, and fleetform's CPU for a
//! no-op plan from about 0.34 s to about 0.25 s. The README's "Compact configs" has the table.
//!
//! [`Builder`] is the one writer: from a YAML node tree (the manifest), from JSON text (the
//! cloud's `robot_config_json`) through serde, or from a `Value`.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

/// A config in compact form; see the module docs. Immutable once built.
#[derive(Clone)]
pub struct ConfigJson {
    text: Arc<str>,
    digest: [u8; 32],
    /// Byte range of the top-level `fragments` value in `text`, when there is one.
    fragments: Option<(u32, u32)>,
}

impl ConfigJson {
    /// The empty object `{}`.
    pub fn empty() -> Self {
        let mut b = Builder::new();
        b.begin_obj();
        b.end_obj();
        b.finish()
    }

    /// The compact form of `value`.
    pub fn from_value(value: &Value) -> Self {
        let mut b = Builder::new();
        b.value(value);
        b.finish()
    }

    /// The compact form of JSON `text` (any spacing), read in one pass.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut b = Builder::new();
        Emit(&mut b).deserialize(&mut de)?;
        de.end()?;
        Ok(b.finish())
    }

    /// The structured value, parsed from the text, keys in the order written.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).expect("a compact config's text is JSON it wrote")
    }

    /// The compact JSON text, keys in the order written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the canonical form (without the top-level `fragments` key).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether the config is a JSON object.
    pub fn is_object(&self) -> bool {
        self.text.starts_with('{')
    }

    /// Whether the config is `{}`.
    pub fn is_empty_object(&self) -> bool {
        &*self.text == "{}"
    }

    /// Whether the config has a top-level `fragments` key.
    pub fn has_fragments(&self) -> bool {
        self.fragments.is_some()
    }

    /// The top-level `fragments` value's text (`None` when there is no such key).
    pub fn fragments_text(&self) -> Option<&str> {
        let (start, end) = self.fragments?;
        Some(&self.text[start as usize..end as usize])
    }

    /// The top-level `fragments` value (`None` when there is no such key), parsed alone.
    pub fn fragments_value(&self) -> Option<Value> {
        let slice = self.fragments_text()?;
        Some(serde_json::from_str(slice).expect("a compact config's text is JSON it wrote"))
    }

    /// The entries of the top-level `fragments` list as written (empty when it has none).
    pub fn imports(&self) -> Vec<Value> {
        match self.fragments_value() {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        }
    }

    /// Canonical equality, the top-level `fragments` key aside.
    pub fn same_without_fragments(&self, other: &ConfigJson) -> bool {
        self.digest == other.digest
    }
}

impl Default for ConfigJson {
    fn default() -> Self {
        ConfigJson::empty()
    }
}

/// Canonical equality of the whole config, `fragments` included.
impl PartialEq for ConfigJson {
    fn eq(&self, other: &Self) -> bool {
        if self.text == other.text {
            return true;
        }
        if self.digest != other.digest {
            return false;
        }
        match (self.fragments_value(), other.fragments_value()) {
            (None, None) => true,
            (Some(a), Some(b)) => ConfigJson::from_value(&a) == ConfigJson::from_value(&b),
            _ => false,
        }
    }
}

impl fmt::Debug for ConfigJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for ConfigJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Value> for ConfigJson {
    fn from(value: Value) -> Self {
        ConfigJson::from_value(&value)
    }
}

impl From<&Value> for ConfigJson {
    fn from(value: &Value) -> Self {
        ConfigJson::from_value(value)
    }
}

/// As the JSON value it holds.
impl Serialize for ConfigJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// From any JSON-shaped value, written straight into the compact form.
impl<'de> Deserialize<'de> for ConfigJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut b = Builder::new();
        Emit(&mut b).deserialize(d)?;
        Ok(b.finish())
    }
}

/// An open object or list while building.
enum Frame {
    Obj {
        /// Where the object's `{` is in the canonical buffer.
        start: usize,
        /// Where its entries begin in [`Builder::entries`].
        first: usize,
        /// Where the current entry's value starts in the text (for `fragments`).
        value_at: usize,
        /// Whether the current entry is the top level's `fragments`.
        fragments: bool,
    },
    Arr {
        first: bool,
    },
}

/// Marks an entry whose value is still being written.
const OPEN: usize = usize::MAX;

/// Writes a config's compact text and canonical bytes in one pass (see the module docs).
///
/// Call the value methods in document order (`begin_obj`, then `key` before each entry's
/// value, `end_obj`; `begin_arr` … `end_arr`), then [`Builder::finish`]. Objects share the
/// builder's scratch buffers, so building allocates little beyond the two outputs.
pub struct Builder {
    text: Vec<u8>,
    canon: Vec<u8>,
    stack: Vec<Frame>,
    /// The entries of every open object, innermost last: each one's range in the canonical
    /// buffer (`"key":value`, no comma; the end is [`OPEN`] while its value is written).
    entries: Vec<(usize, usize)>,
    /// Scratch for reordering one object's entries: (start, key end, end) relative to `body`.
    spans: Vec<(usize, usize, usize)>,
    body: Vec<u8>,
    fragments: Option<(u32, u32)>,
    /// The deepest nesting of objects and lists seen (the config itself is level 1).
    pub max_depth: usize,
    /// Whether some string value contains `${env:`.
    pub env_reference: bool,
    /// Whether some object has a key twice.
    pub repeated_key: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            text: Vec::with_capacity(256),
            canon: Vec::with_capacity(256),
            stack: Vec::new(),
            entries: Vec::new(),
            spans: Vec::new(),
            body: Vec::new(),
            fragments: None,
            max_depth: 0,
            env_reference: false,
            repeated_key: false,
        }
    }

    /// Before any value: the list separator.
    fn before_value(&mut self) {
        if let Some(Frame::Arr { first }) = self.stack.last_mut() {
            if !*first {
                self.text.push(b',');
                self.canon.push(b',');
            }
            *first = false;
        }
    }

    /// Writes the same bytes to the text and the canonical form.
    fn both(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        self.canon.extend_from_slice(bytes);
    }

    pub fn null(&mut self) {
        self.before_value();
        self.both(b"null");
    }

    pub fn bool(&mut self, b: bool) {
        self.before_value();
        self.both(if b { b"true" } else { b"false" });
    }

    pub fn i64(&mut self, i: i64) {
        self.before_value();
        let at = self.text.len();
        write!(self.text, "{i}").expect("writing to a Vec cannot fail");
        self.canon.extend_from_slice(&self.text[at..]);
    }

    pub fn u64(&mut self, u: u64) {
        self.before_value();
        let at = self.text.len();
        write!(self.text, "{u}").expect("writing to a Vec cannot fail");
        self.canon.extend_from_slice(&self.text[at..]);
    }

    /// A float; one that is not finite is `null`, as in a `Value`.
    pub fn f64(&mut self, f: f64) {
        if !f.is_finite() {
            return self.null();
        }
        self.before_value();
        let at = self.text.len();
        serde_json::to_writer(&mut self.text, &f).expect("writing to a Vec cannot fail");
        if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
            write!(self.canon, "{}", f as i64).expect("writing to a Vec cannot fail");
        } else {
            self.canon.extend_from_slice(&self.text[at..]);
        }
    }

    pub fn str(&mut self, s: &str) {
        self.before_value();
        if s.contains("${env:") {
            self.env_reference = true;
        }
        let at = self.text.len();
        write_str(&mut self.text, s);
        self.canon.extend_from_slice(&self.text[at..]);
    }

    pub fn begin_obj(&mut self) {
        self.before_value();
        self.text.push(b'{');
        self.stack.push(Frame::Obj {
            start: self.canon.len(),
            first: self.entries.len(),
            value_at: 0,
            fragments: false,
        });
        self.canon.push(b'{');
        self.max_depth = self.max_depth.max(self.stack.len());
    }

    /// Ends the entry being written in the innermost object, if any.
    fn close_entry(&mut self) {
        let top = self.stack.len() == 1;
        let Some(Frame::Obj {
            first,
            value_at,
            fragments,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        if self.entries.len() > *first
            && let Some(last) = self.entries.last_mut()
            && last.1 == OPEN
        {
            last.1 = self.canon.len();
            if top && *fragments {
                self.fragments = Some((*value_at as u32, self.text.len() as u32));
                *fragments = false;
            }
        }
    }

    pub fn key(&mut self, k: &str) {
        self.close_entry();
        let top = self.stack.len() == 1;
        let Some(Frame::Obj {
            first,
            value_at,
            fragments,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        if self.entries.len() > *first {
            self.text.push(b',');
            self.canon.push(b',');
        }
        self.entries.push((self.canon.len(), OPEN));
        let at = self.text.len();
        write_str(&mut self.text, k);
        self.canon.extend_from_slice(&self.text[at..]);
        self.text.push(b':');
        self.canon.push(b':');
        *value_at = self.text.len();
        *fragments = top && k == "fragments";
    }

    pub fn end_obj(&mut self) {
        self.close_entry();
        let top = self.stack.len() == 1;
        let Some(Frame::Obj { start, first, .. }) = self.stack.pop() else {
            return;
        };
        self.text.push(b'}');
        let drop_fragments = top && self.fragments.is_some();
        let canon = &self.canon;
        let entries = &self.entries[first..];
        let name = |&(s, _): &(usize, usize)| &canon[s..key_end(canon, s)];
        let sorted = entries.windows(2).all(|w| name(&w[0]) < name(&w[1]));
        if sorted && !drop_fragments {
            self.entries.truncate(first);
            self.canon.push(b'}');
            return;
        }
        // Reorder: the entries' bytes move to `body`, and come back sorted by key.
        let base = start + 1;
        self.spans.clear();
        self.spans.extend(
            entries
                .iter()
                .map(|&(s, e)| (s - base, key_end(canon, s) - base, e - base)),
        );
        self.entries.truncate(first);
        self.body.clear();
        self.body.extend_from_slice(&self.canon[base..]);
        self.canon.truncate(base);
        let body = &self.body;
        // Stable: of repeated keys the last one written comes last.
        self.spans
            .sort_by(|a, b| body[a.0..a.1].cmp(&body[b.0..b.1]));
        let mut first = true;
        for (i, &(s, k, e)) in self.spans.iter().enumerate() {
            let name = &body[s..k];
            // Of repeated keys the last one written counts, as in a `Value`.
            let repeated = self
                .spans
                .get(i + 1)
                .is_some_and(|&(ns, nk, _)| body[ns..nk] == *name);
            self.repeated_key |= repeated;
            if repeated || (drop_fragments && name == b"\"fragments\"") {
                continue;
            }
            if !first {
                self.canon.push(b',');
            }
            first = false;
            self.canon.extend_from_slice(&body[s..e]);
        }
        self.canon.push(b'}');
    }

    pub fn begin_arr(&mut self) {
        self.before_value();
        self.text.push(b'[');
        self.canon.push(b'[');
        self.stack.push(Frame::Arr { first: true });
        self.max_depth = self.max_depth.max(self.stack.len());
    }

    pub fn end_arr(&mut self) {
        self.stack.pop();
        self.text.push(b']');
        self.canon.push(b']');
    }

    /// Writes a whole `Value`.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => self.u64(u),
                (None, Some(i)) => self.i64(i),
                _ => self.f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => self.str(s),
            Value::Array(items) => {
                self.begin_arr();
                for item in items {
                    self.value(item);
                }
                self.end_arr();
            }
            Value::Object(map) => {
                self.begin_obj();
                for (k, child) in map {
                    self.key(k);
                    self.value(child);
                }
                self.end_obj();
            }
        }
    }

    /// The config written; its digest is taken here, once.
    pub fn finish(mut self) -> ConfigJson {
        self.finish_and_clear()
    }

    /// [`finish`](Self::finish), leaving the builder empty with its buffers kept, to write
    /// the next config without growing them again.
    pub fn finish_and_clear(&mut self) -> ConfigJson {
        let digest: [u8; 32] = Sha256::digest(&self.canon).into();
        let text = std::str::from_utf8(&self.text).expect("the builder writes UTF-8");
        let json = ConfigJson {
            text: Arc::from(text),
            digest,
            fragments: self.fragments,
        };
        self.text.clear();
        self.canon.clear();
        self.stack.clear();
        self.entries.clear();
        self.fragments = None;
        self.max_depth = 0;
        self.env_reference = false;
        self.repeated_key = false;
        json
    }
}

/// Where the key of the entry at `start` (its opening quote) ends: after its closing quote.
fn key_end(canon: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while canon[i] != b'"' {
        i += if canon[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// `s` as a JSON string, as `serde_json` writes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Feeds whatever a deserializer holds into a [`Builder`], without building a tree.
struct Emit<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Emit<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Emit<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.bool(v);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        // As a `Value` holds it: a non-negative integer is unsigned.
        match u64::try_from(v) {
            Ok(u) => self.0.u64(u),
            Err(_) => self.0.i64(v),
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.u64(v);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.f64(v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.str(v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.null();
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.null();
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.begin_arr();
        while seq.next_element_seed(Emit(&mut *self.0))?.is_some() {}
        self.0.end_arr();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.begin_obj();
        while map.next_key_seed(Key(&mut *self.0))?.is_some() {
            map.next_value_seed(Emit(&mut *self.0))?;
        }
        self.0.end_obj();
        Ok(())
    }
}

/// An object key, written as the next entry's key.
struct Key<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.key(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> ConfigJson {
        ConfigJson::from_json(s).expect("json")
    }

    #[test]
    fn text_is_compact_and_keeps_the_written_order() {
        let c = text(r#"{ "b": 1, "a": {"y": 2.0, "x": [1, 2.5, "\u0041"]}, "e": 1e0 }"#);
        assert_eq!(c.text(), r#"{"b":1,"a":{"y":2.0,"x":[1,2.5,"A"]},"e":1.0}"#);
        assert_eq!(c.text(), serde_json::to_string(&c.to_value()).unwrap());
        assert_eq!(ConfigJson::from_value(&c.to_value()).text(), c.text());
    }

    #[test]
    fn key_order_number_spelling_and_escapes_do_not_change_the_digest() {
        let a = text(r#"{"b": 1, "a": {"y": 2.0, "x": [1, 2.5]}, "s": "A\n"}"#);
        let b = text(r#"{"s": "\u0041\n", "a": {"x": [1.0, 25e-1], "y": 2}, "b": 1e0}"#);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a, b);
        // Every real difference is seen.
        for other in [
            r#"{"b": 1, "a": {"y": 2, "x": [2.5, 1]}, "s": "A\n"}"#,
            r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5]}, "s": "A"}"#,
            r#"{"b": 1, "a": {"y": "2", "x": [1, 2.5]}, "s": "A\n"}"#,
            r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5], "z": null}, "s": "A\n"}"#,
            r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5]}}"#,
            r#"{"b": 1, "a": {"y": 2, "x": [[1, 2.5]]}, "s": "A\n"}"#,
            r#"{"b": -1, "a": {"y": 2, "x": [1, 2.5]}, "s": "A\n"}"#,
            r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5]}, "S": "A\n"}"#,
            r#"{"b": 1, "a": {"y": 2, "xx": [1, 2.5]}, "s": "A\n"}"#,
            r#"{"b": 1, "a": [{"y": 2, "x": [1, 2.5]}], "s": "A\n"}"#,
        ] {
            assert_ne!(a.digest(), text(other).digest(), "{other}");
        }
    }

    #[test]
    fn the_digest_agrees_with_the_canonical_comparison() {
        use crate::plan::canonical::{canonical_eq, comparable_eq};
        let configs = [
            json!({"b": 1, "a": {"y": 2.0, "x": [1, 2.5]}}),
            json!({"a": {"x": [1.0, 2.5], "y": 2}, "b": 1e0}),
            json!({"a": {"x": [2.5, 1], "y": 2}, "b": 1}),
            json!({"a": {"x": [1, 2.5], "y": 2}, "b": 1, "fragments": ["f"]}),
            json!({"fragments": [{"id": "f"}], "a": {"x": [1, 2.5], "y": 2}, "b": 1}),
            json!({"a": {"x": [1, 2.5], "y": 2}}),
            json!({"a": {"x": [1, 2.5], "y": 2, "z": null}, "b": 1}),
            json!({"a": {"x": [1, 2.5], "y": "2"}, "b": 1}),
            json!({"a": {"fragments": 1}}),
            json!({"a": {}}),
            json!({"a": []}),
            json!({"a": [{}]}),
            json!({"": 1, "\"": 2, "\\": 3}),
            json!({"\\": 3, "\"": 2, "": 1}),
            json!({"a\"b": 1, "a": 2}),
            json!([1, {"a": 1}]),
            json!("text"),
            json!(-3),
            json!(-3.0),
        ];
        for a in &configs {
            for b in &configs {
                let (ca, cb) = (ConfigJson::from_value(a), ConfigJson::from_value(b));
                assert_eq!(
                    ca.same_without_fragments(&cb),
                    comparable_eq(a, b, &[]),
                    "{a} {b}"
                );
                assert_eq!(ca == cb, canonical_eq(a, b), "{a} {b}");
            }
        }
    }

    #[test]
    fn repeated_keys_count_once_with_the_last_value() {
        let c = text(r#"{"a": 1, "b": 2, "a": 3}"#);
        assert_eq!(c.to_value(), json!({"a": 3, "b": 2}));
        assert_eq!(c.digest(), text(r#"{"b": 2, "a": 3}"#).digest());
    }

    #[test]
    fn imports_are_read_from_their_own_slice() {
        let c = text(
            r#"{"components": [], "fragments": ["a", {"id": "b", "version": "2"}], "x": {"fragments": 1}}"#,
        );
        assert!(c.has_fragments());
        assert_eq!(
            c.imports(),
            vec![json!("a"), json!({"id": "b", "version": "2"})]
        );
        assert_eq!(
            c.digest(),
            text(r#"{"components": [], "x": {"fragments": 1}}"#).digest()
        );
        assert_ne!(c, text(r#"{"components": [], "x": {"fragments": 1}}"#));
        assert!(text(r#"{"x": {"fragments": [1]}}"#).imports().is_empty());
        assert!(ConfigJson::empty().is_empty_object());
    }

    #[test]
    fn serde_round_trips_through_the_value() {
        let c = text(r#"{"z": 1, "a": [true, null, "s"]}"#);
        let out = serde_json::to_string(&c).unwrap();
        assert_eq!(out, r#"{"z":1,"a":[true,null,"s"]}"#);
        let back: ConfigJson = serde_json::from_str(&out).unwrap();
        assert_eq!(back.text(), c.text());
        let yaml: ConfigJson = serde_yaml::from_str("z: 1\na: [true, ~, s]\n").unwrap();
        assert_eq!(yaml.text(), c.text());
    }

    #[test]
    fn builder_reports_depth_and_env_references() {
        let mut b = Builder::new();
        b.value(&json!({"a": [{"b": "x ${env:T}"}]}));
        assert_eq!((b.max_depth, b.env_reference), (3, true));
    }
}
