//! What the kit's tests share: a function with small limits, and a target for it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use wkp1_conformance::Target;
use wkp1_protocol::{Identifier, KeyId};
use wkp1_testkit::{self as testing, Server};

/// Limits small enough that the large-segment path runs with little data.
pub fn small_limits(c: &mut wkp1_function::FunctionConfig) {
    c.limits.max_inline_bytes = 256 << 10;
    c.limits.max_response_bytes = 192 << 10;
    c.part_size = 64 << 10;
}

pub fn target(server: &Server) -> Target {
    Target {
        base_url: server.url.clone(),
        key_id: KeyId::new(testing::KEY_ID).unwrap(),
        secret: testing::secret(),
        second_key: Some((KeyId::new(testing::SECOND_KEY_ID).unwrap(), testing::second_secret())),
        engine: Identifier::new("conformance").unwrap(),
        instance: Identifier::new(format!("run-{:08x}", rand::random::<u32>())).unwrap(),
        request_timeout: Duration::from_secs(30),
        large_state_max: 8 << 20,
    }
}
