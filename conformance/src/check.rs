//! What a check is: a stable id, the SPEC requirements it exercises, MUST or SHOULD, and a body
//! that passes, fails (saying why) or skips (saying why).

use std::fmt;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::session::Session;
pub use crate::verdict::{CheckError, CheckResult};

/// How binding the requirements a check exercises are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "SHOULD")]
    Should,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

/// One conformance check.
pub struct Check {
    /// `<group>_<condition>_<outcome>`, stable across releases.
    pub id: &'static str,
    pub group: &'static str,
    pub level: Level,
    /// SPEC.md requirement ids the check exercises.
    pub requirements: &'static [&'static str],
    /// One line saying why the check exists.
    pub why: &'static str,
    pub run: for<'a> fn(&'a mut Session) -> BoxFuture<'a, CheckResult>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("id", &self.id)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// Declares a check from an `async fn(&mut Session) -> CheckResult`.
#[macro_export]
macro_rules! check {
    ($id:ident, $group:literal, $level:ident, [$($req:literal),+], $why:literal) => {
        $crate::check::Check {
            id: stringify!($id),
            group: $group,
            level: $crate::check::Level::$level,
            requirements: &[$($req),+],
            why: $why,
            run: |session| Box::pin($id(session)),
        }
    };
}
