//! Protocol versioning (SPEC.md section "Versioning", `VER-1` to `VER-4`).
//!
//! The major version is in the path (`/v1/`); the minor version travels in the `WKP-Version`
//! header and in every JSON body as `wkp_version`. Peers that share a major version interoperate
//! whatever their minor versions: minor versions only add optional fields.

use std::fmt;
use std::str::FromStr;

/// A `MAJOR.MINOR` protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

/// The version this crate implements.
pub const CURRENT: Version = Version { major: 1, minor: 0 };

/// The path segment of the current major version.
pub const PATH_PREFIX: &str = "/v1/";

impl Version {
    /// True when a peer speaking `other` can talk to us (same major version).
    pub fn is_compatible_with(self, other: Version) -> bool {
        self.major == other.major
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version string that is not `MAJOR.MINOR` in decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version {0:?} is not of the form MAJOR.MINOR")]
pub struct VersionParseError(pub String);

impl FromStr for Version {
    type Err = VersionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionParseError(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        let number = |part: &str| {
            if part.is_empty() || part.len() > 5 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse::<u16>().map_err(|_| err())
        };
        Ok(Version { major: number(major)?, minor: number(minor)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_major_minor() {
        let v: Version = "1.7".parse().unwrap();
        assert_eq!(v, Version { major: 1, minor: 7 });
        assert_eq!(v.to_string(), "1.7");
        assert!(CURRENT.is_compatible_with(v));
        assert!(!CURRENT.is_compatible_with("2.0".parse().unwrap()));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in ["1", "1.", ".1", "v1.0", "1.0.0", "1.-1", "+1.0", "1.0 ", "99999999.0"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }
}
