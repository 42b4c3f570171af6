//! Serde glue for the types the macros generate (job payloads, workflow inputs, job outputs).
//!
//! Every use of a user type's serde impls in generated code goes through [`Serde<T>`]. When `T`
//! implements `Serialize` and `DeserializeOwned`, `<Serde<T>>::f` resolves to the inherent
//! functions below, which call those impls. When it does not, the inherent functions do not
//! apply and the same path resolves to the [`Unimplemented`] trait's stand-ins, which compile
//! for any `T` and refuse at run time. So a type without serde leaves the generated impls
//! compiling, and the only error is the one the macro places at the user's type: a constant
//! check of [`Serde::SERIALIZE`] and [`Serde::DESERIALIZE`] that panics with a message naming the
//! parameter, the job and the derive to add. (The generated code brings `Unimplemented` into
//! scope; the stand-ins never run in a program that compiles.)

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

/// Resolves to `T`'s serde impls when it has them, otherwise to refusing stand-ins.
pub struct Serde<T>(PhantomData<T>);

impl<T: Serialize> Serde<T> {
    /// `T` implements `Serialize`.
    pub const SERIALIZE: bool = true;

    /// `value`, to serialize as itself.
    pub fn ser(value: &T) -> &T {
        value
    }
}

impl<T: DeserializeOwned> Serde<T> {
    /// `T` implements `DeserializeOwned`.
    pub const DESERIALIZE: bool = true;

    /// The seed that deserializes a `T`.
    pub fn seed() -> PhantomData<T> {
        PhantomData
    }

    /// The value of field `field` when the input leaves it out: `None` for an `Option` (as
    /// serde's derive does), otherwise a "missing field" error.
    pub fn missing<E: de::Error>(field: &'static str) -> Result<T, E> {
        T::deserialize(MissingField {
            field,
            error: PhantomData,
        })
    }
}

/// The stand-ins `<Serde<T>>::..` resolves to when `T` lacks serde: they compile for every `T`
/// and refuse at run time.
pub trait Unimplemented {
    /// The type that lacks serde.
    type Item;

    /// `Item` does not implement `Serialize`.
    const SERIALIZE: bool = false;
    /// `Item` does not implement `DeserializeOwned`.
    const DESERIALIZE: bool = false;

    /// A value that refuses to serialize.
    fn ser(_value: &Self::Item) -> &'static Refused {
        &Refused
    }

    /// A seed that refuses to deserialize.
    fn seed() -> RefusedSeed<Self::Item> {
        RefusedSeed(PhantomData)
    }

    /// Refuses.
    fn missing<E: de::Error>(_field: &'static str) -> Result<Self::Item, E> {
        Err(de::Error::custom(REFUSED))
    }
}

impl<T> Unimplemented for Serde<T> {
    type Item = T;
}

const REFUSED: &str = "this type does not implement serde's traits";

/// Serializes as an error.
#[derive(Debug)]
pub struct Refused;

impl Serialize for Refused {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom(REFUSED))
    }
}

/// Deserializes as an error.
pub struct RefusedSeed<T>(PhantomData<T>);

impl<'de, T> DeserializeSeed<'de> for RefusedSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, _deserializer: D) -> Result<T, D::Error> {
        Err(de::Error::custom(REFUSED))
    }
}

/// What a left-out field deserializes from: nothing for an `Option`, an error for anything else.
struct MissingField<E> {
    field: &'static str,
    error: PhantomData<E>,
}

impl<'de, E: de::Error> Deserializer<'de> for MissingField<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        Err(E::missing_field(self.field))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Deserializes a field name into its position among `fields` (`None` for a name not there,
/// which the generated visitors skip, as serde's derive does).
#[derive(Debug, Clone, Copy)]
pub struct FieldIndex(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldIndex {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|field| *field == name))
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|field| field.as_bytes() == name))
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<Self::Value, E> {
        Ok(usize::try_from(index)
            .ok()
            .filter(|index| *index < self.0.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Opaque;

    #[test]
    fn resolves_to_real_impls_or_stand_ins() {
        const { assert!(<Serde<String>>::SERIALIZE && <Serde<String>>::DESERIALIZE) };
        const { assert!(!<Serde<Opaque>>::SERIALIZE && !<Serde<Opaque>>::DESERIALIZE) };
        assert_eq!(serde_json::to_string(<Serde<u32>>::ser(&7)).unwrap(), "7");
        assert!(serde_json::to_string(<Serde<Opaque>>::ser(&Opaque)).is_err());
    }

    #[test]
    fn a_missing_option_is_none_and_anything_else_an_error() {
        let none: Option<u8> = <Serde<Option<u8>>>::missing::<serde_json::Error>("x").unwrap();
        assert_eq!(none, None);
        let error = <Serde<u8>>::missing::<serde_json::Error>("count").unwrap_err();
        assert_eq!(error.to_string(), "missing field `count`");
    }

    #[test]
    fn field_names_map_to_positions() {
        let fields = FieldIndex(&["a", "b"]);
        let mut de = serde_json::Deserializer::from_str("\"b\"");
        assert_eq!(fields.deserialize(&mut de).unwrap(), Some(1));
        let mut de = serde_json::Deserializer::from_str("\"c\"");
        assert_eq!(fields.deserialize(&mut de).unwrap(), None);
    }
}
