//! The checks, one file per group. Ids read `<group>_<condition>_<outcome>`.

mod auth;
mod endpoints;
mod fencing;
mod flush;
mod identifiers;
mod interactions;
mod limits;
mod persist;
mod restore;
mod robustness;

use crate::check::Check;

/// Every check, in the order a report lists them.
pub fn all() -> Vec<Check> {
    [
        auth::checks(),
        identifiers::checks(),
        endpoints::checks(),
        restore::checks(),
        persist::checks(),
        fencing::checks(),
        flush::checks(),
        interactions::checks(),
        limits::checks(),
        robustness::checks(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The groups, in report order.
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for check in all() {
        if !groups.contains(&check.group) {
            groups.push(check.group);
        }
    }
    groups
}
