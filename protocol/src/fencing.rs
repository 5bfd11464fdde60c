//! The `details` of a generation refusal, typed: written by the function, read by clients.
//!
//! ```json
//! {"current_generation": 4, "kept": true, "segment": "8954…"}
//! ```
//!
//! `current_generation` is always there (`GEN-4`, `GEN-6`, `FLUSH-2`); `kept` and `segment`
//! say that the refused segment was kept as superseded data and which one it was (`GEN-5`).

use serde::{Deserialize, Serialize};

use crate::endpoint::SegmentId;
use crate::error::{ErrorCode, ProtocolError};

/// What a `generation_fenced`, `generation_closed` or `generation_unknown` refusal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencingDetails {
    /// The subtree's generation when the request was refused.
    pub current_generation: u64,
    /// Whether the refused segment was kept as superseded data (`GEN-5`).
    #[serde(default)]
    pub kept: bool,
    /// The kept segment, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentId>,
}

impl FencingDetails {
    /// Details of a refusal that kept nothing.
    pub fn refused(current_generation: u64) -> Self {
        Self { current_generation, kept: false, segment: None }
    }

    /// The same refusal, now that `segment` was kept as superseded data.
    pub fn kept(self, segment: SegmentId) -> Self {
        Self { kept: true, segment: Some(segment), ..self }
    }

    /// The details of a generation refusal; `None` for any other error, or details that are
    /// not fencing details.
    pub fn of(error: &ProtocolError) -> Option<Self> {
        let fencing = matches!(
            error.code,
            ErrorCode::GenerationFenced
                | ErrorCode::GenerationClosed
                | ErrorCode::GenerationUnknown
        );
        fencing.then(|| serde_json::from_value(error.details.clone()?).ok()).flatten()
    }
}

impl ProtocolError {
    /// Attaches fencing details.
    pub fn fencing(self, details: FencingDetails) -> Self {
        self.details(serde_json::to_value(details).expect("fencing details serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_details_travel_as_the_spec_shows_them() {
        let id = SegmentId([0x89; 32]);
        let err = ProtocolError::new(ErrorCode::GenerationFenced, "superseded")
            .fencing(FencingDetails::refused(4).kept(id));
        let body = serde_json::to_value(err.to_body()).unwrap();
        assert_eq!(body["error"]["details"]["current_generation"], 4);
        assert_eq!(body["error"]["details"]["kept"], true);
        assert_eq!(body["error"]["details"]["segment"], id.to_hex());
        assert_eq!(FencingDetails::of(&err), Some(FencingDetails::refused(4).kept(id)));

        let nothing_kept = ProtocolError::new(ErrorCode::GenerationUnknown, "never claimed")
            .fencing(FencingDetails::refused(2));
        let details = FencingDetails::of(&nothing_kept).unwrap();
        assert!(!details.kept && details.segment.is_none());
        assert_eq!(details.current_generation, 2);

        let other =
            ProtocolError::new(ErrorCode::InvalidRequest, "x").fencing(FencingDetails::refused(1));
        assert_eq!(FencingDetails::of(&other), None, "only generation refusals carry them");
    }
}
