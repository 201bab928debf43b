//! The config schema as data: every table, array and leaf field of
//! [`RawConfig`], traced from its own `Deserialize` impl (a deserializer that
//! answers each field with a placeholder and records what was asked), so the
//! list cannot drift from the structs. Used to keep error paths to field
//! names of ours and by the tests that walk every field.

use super::raw::RawConfig;
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(&'static str),
    /// An array element (the trace uses index 0).
    Index(usize),
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A section or array element with named fields.
    Table,
    /// An array (of tables or of leaves).
    Array,
    String,
    Integer,
    Float,
    Bool,
    /// Several types (`source.fps`: number or string).
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    pub path: Vec<Segment>,
    pub shape: Shape,
}

impl Field {
    /// `destination[0].url` (empty for the root).
    pub fn dotted(&self) -> String {
        dotted(&self.path)
    }
}

pub fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Every field of the config, parents before children; the root (an
/// empty path, a table) first.
pub fn fields() -> Vec<Field> {
    let out = RefCell::new(Vec::new());
    RawConfig::deserialize(Tracer { path: Vec::new(), out: &out }).expect("the raw config traces");
    out.into_inner()
}

/// The field names the config knows, in any section (for keeping paths to
/// names of ours).
pub fn is_field_name(k: &str) -> bool {
    thread_local! {
        static NAMES: Vec<&'static str> = fields().iter().filter_map(|f| match f.path.last() {
            Some(Segment::Key(k)) => Some(*k),
            _ => None,
        }).collect();
    }
    NAMES.with(|n| n.contains(&k))
}

struct Tracer<'a> {
    path: Vec<Segment>,
    out: &'a RefCell<Vec<Field>>,
}

impl Tracer<'_> {
    fn record(&self, shape: Shape) {
        self.out.borrow_mut().push(Field { path: self.path.clone(), shape });
    }
    fn child(&self, s: Segment) -> Tracer<'_> {
        let mut path = self.path.clone();
        path.push(s);
        Tracer { path, out: self.out }
    }
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Any);
        visitor.visit_i64(30)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Bool);
        visitor.visit_bool(false)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Integer);
        visitor.visit_u32(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Integer);
        visitor.visit_u64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Float);
        visitor.visit_f64(0.0)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::String);
        visitor.visit_str("")
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Array);
        visitor.visit_seq(TraceSeq { element: Some(self.child(Segment::Index(0))) })
    }
    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Shape::Table);
        visitor.visit_map(TraceMap { parent: &self, fields: fields.iter(), next: None })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u128 f32 char bytes byte_buf unit unit_struct newtype_struct
        tuple tuple_struct map enum identifier ignored_any
    }
}

struct TraceSeq<'a> {
    element: Option<Tracer<'a>>,
}

impl<'de> SeqAccess<'de> for TraceSeq<'_> {
    type Error = de::value::Error;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.element.take().map(|t| seed.deserialize(t)).transpose()
    }
}

struct TraceMap<'a, 'b> {
    parent: &'b Tracer<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    next: Option<&'static str>,
}

impl<'de> MapAccess<'de> for TraceMap<'_, '_> {
    type Error = de::value::Error;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some(name) = self.fields.next() else { return Ok(None) };
        self.next = Some(name);
        seed.deserialize((*name).into_deserializer()).map(Some)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let name = self.next.take().expect("value after key");
        seed.deserialize(self.parent.child(Segment::Key(name)))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.dotted(), self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_reaches_every_section_array_and_leaf() {
        let all: Vec<String> = fields().iter().map(|f| f.to_string()).collect();
        for want in [
            " (Table)",
            "device_id (String)",
            "source (Table)",
            "source.fps (Any)",
            "source.device_number (Integer)",
            "ladder.rungs (Array)",
            "ladder.rungs[0] (Table)",
            "ladder.rungs[0].bitrate_kbps (Integer)",
            "ladder.gop_seconds (Float)",
            "destination (Array)",
            "destination[0].key (String)",
            "destination[0].rungs[0] (String)",
            "destination[0].enabled (Bool)",
            "destination[0].passphrase (String)",
            "destination[0].pbkeylen (Integer)",
            "destination[0].epoch_aligned (Bool)",
            "recording.rungs (Array)",
            "egress.connect_timeout_ms (Integer)",
            "mqtt.password (String)",
            "mqtt.autostart (Bool)",
            "input_loss.slate_image (String)",
            "http.token (String)",
            "http.public_status (Bool)",
        ] {
            assert!(all.contains(&want.to_string()), "missing {want:?} in {all:#?}");
        }
        // Top level 4, source 12, audio 5, ladder 3 + a rung's 4, destination
        // 19 + rungs[0], recording 6 + rungs[0], egress 5, input_loss 3, mqtt 13, http 6.
        let leaves = fields().iter().filter(|f| !matches!(f.shape, Shape::Table | Shape::Array)).count();
        assert_eq!(leaves, 4 + 12 + 5 + 3 + 4 + 20 + 7 + 5 + 3 + 13 + 6, "{all:#?}");
        assert!(is_field_name("bitrate_kbps") && is_field_name("mqtt") && !is_field_name("sk_live_x"));
    }
}
