//! The manifest and the other WKP-1 JSON bodies: whatever deserializes serializes back to the
//! same value, and the chain a manifest or a plan carries can be checked without panicking.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wkp1_protocol::manifest::{
    CommitRequest, Manifest, PartResponse, PersistResponse, PresignResponse, RestorePlan,
};
use wkp1_protocol::{ErrorBody, validate_chain};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).unwrap();
    let again: T = serde_json::from_slice(&json).expect("our own JSON parses");
    assert_eq!(again, value, "JSON round-trips");
    Some(value)
}

pub fn manifest(data: &[u8]) {
    if let Some(manifest) = round_trips::<Manifest>(data) {
        let _ = manifest.chain_bytes();
        let _ = validate_chain(
            manifest.chain.iter().map(|e| e.segment.header()).collect::<Vec<_>>().iter(),
        );
        if let Some(first) = manifest.chain.first() {
            let _ = manifest.find(&first.segment.id);
        }
    }
    if let Some(plan) = round_trips::<RestorePlan>(data) {
        let _ = validate_chain(
            plan.chain.iter().map(|p| p.segment.header()).collect::<Vec<_>>().iter(),
        );
    }
    round_trips::<CommitRequest>(data);
    round_trips::<PersistResponse>(data);
    round_trips::<PartResponse>(data);
    round_trips::<PresignResponse>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
}
