//! Serde for the `.scb` format's code enums ([`ValueType`], [`IndexEncoding`]), which the no_std runtime
//! defines without serde: a list of them (de)serialises as their names (`f32`, `i8`, `gap8`, `idx16` ...);
//! an index encoding also reads the names manifests wrote before (`u16`, `u32`).

use sculpt_runtime::format::{IndexEncoding, ValueType};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// A code enum spelled by name.
pub trait Named: Sized + Copy + 'static {
    /// What a value is, for messages ("value type").
    const KIND: &'static str;
    /// Every value.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    /// The value `name` spells, including former spellings.
    fn from_name(name: &str) -> Option<Self>;
}

impl Named for ValueType {
    const KIND: &'static str = "value type";
    const ALL: &'static [Self] = ValueType::ALL;
    fn name(self) -> &'static str {
        ValueType::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        ValueType::from_name(name)
    }
}

impl Named for IndexEncoding {
    const KIND: &'static str = "index encoding";
    const ALL: &'static [Self] = IndexEncoding::ALL;
    fn name(self) -> &'static str {
        IndexEncoding::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "u16" => Some(IndexEncoding::CsrIdx16),
            "u32" => Some(IndexEncoding::CsrIdx32),
            _ => IndexEncoding::from_name(name),
        }
    }
}

/// `#[serde(with = "crate::compile::codes::names")]` for a `Vec` of a [`Named`] enum.
pub mod names {
    use super::*;

    pub fn serialize<S: Serializer, T: Named>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|t| t.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<Vec<T>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|n| {
                T::from_name(n).ok_or_else(|| {
                    let known: Vec<&str> = T::ALL.iter().map(|t| t.name()).collect();
                    D::Error::custom(format!(
                        "unknown {} `{n}`, expected one of {}",
                        T::KIND,
                        known.join(", ")
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Lists {
        #[serde(with = "names")]
        v: Vec<ValueType>,
        #[serde(with = "names")]
        e: Vec<IndexEncoding>,
    }

    #[test]
    fn lists_round_trip_by_name_and_read_former_spellings() {
        let l = Lists {
            v: vec![ValueType::F32, ValueType::I8],
            e: IndexEncoding::SPARSE.to_vec(),
        };
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(
            json,
            r#"{"v":["f32","i8"],"e":["gap8","idx16","idx32","rice"]}"#
        );
        assert_eq!(serde_json::from_str::<Lists>(&json).unwrap(), l);
        let old: Lists = serde_json::from_str(r#"{"v":[],"e":["u16","u32"]}"#).unwrap();
        assert_eq!(old.e, [IndexEncoding::CsrIdx16, IndexEncoding::CsrIdx32]);
        let e = serde_json::from_str::<Lists>(r#"{"v":["int4"],"e":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown value type `int4`") && e.contains("f16"),
            "{e}"
        );
    }
}
