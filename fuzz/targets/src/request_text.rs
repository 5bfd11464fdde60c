//! A request as the fuzzer writes it: readable, so seeds can be written by hand.
//!
//! ```text
//! METHOD\n
//! PATH\n
//! QUERY\n
//! name: value\n        (any number of header lines)
//! \n
//! body bytes
//! ```
//!
//! Header lines that `http` refuses as a name or value are skipped: those never reach a server.

use http::{HeaderMap, HeaderName, HeaderValue};

#[derive(Debug, Default)]
pub struct RequestText {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RequestText {
    pub fn parse(data: &[u8]) -> Self {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &[][..]),
        };
        let mut lines = head.split(|b| *b == b'\n');
        let mut text = || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let (method, path, query) = (text(), text(), text());
        let mut headers = HeaderMap::new();
        for line in lines {
            let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        Self { method, path, query, headers, body: body.to_vec() }
    }
}
