//! Deserializes a TOML value into the raw config structs with an error type
//! of our own, so a type error is a field path plus a kind (expected what,
//! found which *type*) built by us, never the parser's text: serde's
//! messages quote the submitted value (a key pasted into the wrong field).

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use std::fmt;

/// What was wrong with one value. Holds type names and our own field
/// lists only: no constructor keeps anything submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The value has the wrong type (`expected` is a description of ours).
    WrongType { expected: String, found: &'static str },
    /// Right type, out of the type's range.
    OutOfRange { expected: String },
    /// A key the section does not have; `allowed` are the section's fields.
    UnknownField { allowed: Vec<&'static str> },
    MissingField(&'static str),
    /// Anything else a `Deserialize` impl refused (its text is dropped).
    Invalid,
}

/// The error of [`from_value`]: a [`Problem`], displayed as our message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError(pub Problem);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Problem::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Problem::OutOfRange { expected } => write!(f, "expected {expected}"),
            Problem::UnknownField { allowed } => write!(f, "unknown field (allowed here: {})", allowed.join(", ")),
            Problem::MissingField(name) => write!(f, "needs `{name}`"),
            Problem::Invalid => f.write_str("is not a valid value here"),
        }
    }
}

impl std::error::Error for SchemaError {}

impl de::Error for SchemaError {
    /// A `Deserialize` impl's free text may quote the value: dropped.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        SchemaError(Problem::Invalid)
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        SchemaError(Problem::WrongType { expected: describe(exp), found: type_of(&unexp) })
    }
    fn invalid_value(_unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        SchemaError(Problem::OutOfRange { expected: describe(exp) })
    }
    fn invalid_length(_len: usize, exp: &dyn de::Expected) -> Self {
        SchemaError(Problem::OutOfRange { expected: describe(exp) })
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        SchemaError(Problem::OutOfRange { expected: format!("one of: {}", expected.join(", ")) })
    }
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        SchemaError(Problem::UnknownField { allowed: expected.to_vec() })
    }
    fn missing_field(field: &'static str) -> Self {
        SchemaError(Problem::MissingField(field))
    }
    fn duplicate_field(_field: &'static str) -> Self {
        SchemaError(Problem::Invalid)
    }
}

/// The type of an unexpected value, never its content.
fn type_of(u: &Unexpected<'_>) -> &'static str {
    match u {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a float",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Seq => "an array",
        Unexpected::Map => "a table",
        Unexpected::Unit | Unexpected::Option => "no value",
        _ => "a value of another type",
    }
}

/// Our words for what a field's type expects. `Expected` comes from the
/// visitor (our types), but only known descriptions pass, by a fixed map.
fn describe(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    let known = match text.as_str() {
        "a string" | "path string" | "a borrowed string" | "a char" => "a string",
        "u32" => "an integer from 0 to 4294967295",
        "u64" => "an integer from 0 to 18446744073709551615",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        FPS_EXPECTED => FPS_EXPECTED,
        t if t.starts_with("struct ") => "a table",
        _ => "a value of another type",
    };
    known.to_string()
}

/// Deserializes `value` into `T`; on error, the path of the field at fault.
pub fn from_value<T: DeserializeOwned>(value: &toml::Value) -> Result<T, serde_path_to_error::Error<SchemaError>> {
    serde_path_to_error::deserialize(ValueDe(value))
}

/// A borrowed TOML value as a serde `Deserializer` with [`SchemaError`].
struct ValueDe<'a>(&'a toml::Value);

impl<'de> Deserializer<'de> for ValueDe<'de> {
    type Error = SchemaError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SchemaError> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_borrowed_str(s),
            toml::Value::Integer(i) => visitor.visit_i64(*i),
            toml::Value::Float(f) => visitor.visit_f64(*f),
            toml::Value::Boolean(b) => visitor.visit_bool(*b),
            // No field takes a date-time; `toml` would pass it on as a string.
            toml::Value::Datetime(_) => {
                Err(SchemaError(Problem::WrongType { expected: describe(&visitor), found: "a date-time" }))
            }
            toml::Value::Array(a) => visitor.visit_seq(SeqDe { iter: a.iter() }),
            toml::Value::Table(t) => visitor.visit_map(MapDe { iter: t.iter(), value: None }),
        }
    }

    /// TOML has no null: a present key is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SchemaError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, SchemaError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SchemaError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum identifier
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, toml::Value>,
}

impl<'de> SeqAccess<'de> for SeqDe<'de> {
    type Error = SchemaError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, SchemaError> {
        self.iter.next().map(|v| seed.deserialize(ValueDe(v))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: toml::map::Iter<'a>,
    value: Option<&'a toml::Value>,
}

impl<'de> MapAccess<'de> for MapDe<'de> {
    type Error = SchemaError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, SchemaError> {
        let Some((k, v)) = self.iter.next() else { return Ok(None) };
        self.value = Some(v);
        let key = de::value::BorrowedStrDeserializer::<SchemaError>::new(k.as_str());
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, SchemaError> {
        let v = self.value.take().expect("next_value_seed after next_key_seed");
        seed.deserialize(ValueDe(v))
    }
}

/// What `source.fps` takes, in the words of its errors.
pub const FPS_EXPECTED: &str = "a frame rate such as 30, 29.97 or \"30000/1001\"";

/// `source.fps`: an integer, a float or a string (checked by `parse_fps`),
/// kept as a TOML value; any other type is a type error naming the field.
pub fn fps_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<toml::Value>, D::Error> {
    struct Fps;
    impl Visitor<'_> for Fps {
        type Value = toml::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(FPS_EXPECTED)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<toml::Value, E> {
            Ok(toml::Value::Integer(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<toml::Value, E> {
            i64::try_from(v).map(toml::Value::Integer).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<toml::Value, E> {
            Ok(toml::Value::Float(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<toml::Value, E> {
            Ok(toml::Value::String(v.to_string()))
        }
    }
    d.deserialize_any(Fps).map(Some)
}
