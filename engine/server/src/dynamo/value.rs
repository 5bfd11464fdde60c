//! DynamoDB attribute values as they travel in JSON (`{"S": "..."}`, `{"N": "12.5"}`, ...).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::number::Number;

/// An item: attribute name to value.
pub type Item = BTreeMap<String, Value>;

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<Value>),
    M(Item),
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64<E: serde::de::Error>(text: &str) -> Result<Vec<u8>, E> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| E::custom("B value is not base64"))
}

impl Value {
    /// The type descriptor: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`, `NS`, `BS`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::S(_) => "S",
            Value::N(_) => "N",
            Value::B(_) => "B",
            Value::Bool(_) => "BOOL",
            Value::Null => "NULL",
            Value::L(_) => "L",
            Value::M(_) => "M",
            Value::Ss(_) => "SS",
            Value::Ns(_) => "NS",
            Value::Bs(_) => "BS",
        }
    }

    /// Order of two scalars of one type (S, N, B); `None` for other or mixed types.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::S(a), Value::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Value::N(a), Value::N(b)) => Some(a.cmp(b)),
            (Value::B(a), Value::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Levels of lists and maps inside this value: 0 for a scalar or a set.
    pub fn depth(&self) -> usize {
        match self {
            Value::L(l) => 1 + l.iter().map(Value::depth).max().unwrap_or(0),
            Value::M(m) => 1 + m.values().map(Value::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Bytes this value counts for in DynamoDB's item size.
    pub fn size(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            Value::N(n) => number_size(n),
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            Value::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            Value::M(m) => 3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>(),
            Value::Ss(s) => s.iter().map(String::len).sum(),
            Value::Ns(n) => n.iter().map(number_size).sum(),
            Value::Bs(b) => b.iter().map(Vec::len).sum(),
        }
    }
}

/// DynamoDB counts a number as one byte per two significant digits, plus one.
fn number_size(n: &Number) -> usize {
    n.significant_digits().div_ceil(2) + 1
}

/// Size of an item as DynamoDB counts it: names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Value::S(v) => map.serialize_entry("S", v)?,
            Value::N(v) => map.serialize_entry("N", &v.to_text())?,
            Value::B(v) => map.serialize_entry("B", &b64(v))?,
            Value::Bool(v) => map.serialize_entry("BOOL", v)?,
            Value::Null => map.serialize_entry("NULL", &true)?,
            Value::L(v) => map.serialize_entry("L", v)?,
            Value::M(v) => map.serialize_entry("M", v)?,
            Value::Ss(v) => map.serialize_entry("SS", v)?,
            Value::Ns(v) => {
                map.serialize_entry("NS", &v.iter().map(Number::to_text).collect::<Vec<_>>())?
            }
            Value::Bs(v) => {
                map.serialize_entry("BS", &v.iter().map(|b| b64(b)).collect::<Vec<_>>())?
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let mut entries = map.into_iter();
        let (Some((kind, raw)), None) = (entries.next(), entries.next()) else {
            return Err(D::Error::custom("an attribute value has exactly one type key"));
        };
        let string = |v: &serde_json::Value| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| D::Error::custom(format!("{kind} value must be a string")))
        };
        let strings = |v: &serde_json::Value| -> Result<Vec<String>, D::Error> {
            v.as_array()
                .ok_or_else(|| D::Error::custom(format!("{kind} value must be a list")))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| D::Error::custom(format!("{kind} members must be strings")))
                })
                .collect()
        };
        let number = |t: &str| Number::parse(t).map_err(|e| D::Error::custom(e.message));
        let unique = |n: usize, len: usize| {
            if n == len {
                Ok(())
            } else {
                Err(D::Error::custom(format!("input collection {kind} contains duplicates")))
            }
        };
        Ok(match kind.as_str() {
            "S" => Value::S(string(&raw)?),
            "N" => Value::N(number(&string(&raw)?)?),
            "B" => Value::B(unb64(&string(&raw)?)?),
            "BOOL" => Value::Bool(
                raw.as_bool()
                    .ok_or_else(|| D::Error::custom("BOOL value must be true or false"))?,
            ),
            "NULL" => Value::Null,
            "L" => Value::L(serde_json::from_value(raw).map_err(D::Error::custom)?),
            "M" => Value::M(serde_json::from_value(raw).map_err(D::Error::custom)?),
            "SS" => {
                let mut v = strings(&raw)?;
                unique(v.iter().collect::<std::collections::BTreeSet<_>>().len(), v.len())?;
                if v.is_empty() {
                    return Err(D::Error::custom("an SS set may not be empty"));
                }
                // Sets have no order: keep them sorted so equal sets compare equal.
                v.sort();
                Value::Ss(v)
            }
            "NS" => {
                let mut v =
                    strings(&raw)?.iter().map(|t| number(t)).collect::<Result<Vec<_>, _>>()?;
                unique(
                    v.iter().map(Number::sort_key).collect::<std::collections::BTreeSet<_>>().len(),
                    v.len(),
                )?;
                if v.is_empty() {
                    return Err(D::Error::custom("an NS set may not be empty"));
                }
                // Sets have no order: keep them sorted so equal sets compare equal.
                v.sort();
                Value::Ns(v)
            }
            "BS" => {
                let mut v =
                    strings(&raw)?.iter().map(|t| unb64(t)).collect::<Result<Vec<_>, _>>()?;
                unique(v.iter().collect::<std::collections::BTreeSet<_>>().len(), v.len())?;
                if v.is_empty() {
                    return Err(D::Error::custom("a BS set may not be empty"));
                }
                // Sets have no order: keep them sorted so equal sets compare equal.
                v.sort();
                Value::Bs(v)
            }
            other => return Err(D::Error::custom(format!("unknown attribute type {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_dynamodb_json() {
        let json = r#"{"a":{"S":"x"},"b":{"N":"1.50"},"c":{"B":"AAE="},"d":{"BOOL":true},"e":{"NULL":true},"f":{"L":[{"S":"y"}]},"g":{"M":{"h":{"N":"2"}}},"i":{"SS":["p","q"]},"j":{"NS":["1","2"]},"k":{"BS":["AA=="]}}"#;
        let item: Item = serde_json::from_str(json).unwrap();
        assert_eq!(item["c"], Value::B(vec![0, 1]));
        let back = serde_json::to_string(&item).unwrap();
        assert!(back.contains(r#""b":{"N":"1.5"}"#));
        assert_eq!(serde_json::from_str::<Item>(&back).unwrap(), item);
        assert!(serde_json::from_str::<Item>(r#"{"a":{"SS":["x","x"]}}"#).is_err());
        assert!(serde_json::from_str::<Item>(r#"{"a":{"S":"x","N":"1"}}"#).is_err());
    }
}
