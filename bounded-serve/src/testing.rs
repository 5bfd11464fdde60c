//! Hostile clients on raw TCP, for tests of servers that serve through this crate: a client
//! that trickles bytes, and one that sends a request as given and reads the answer to the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Limits;

/// Limits tight enough that a test sees each one trip within a second or two.
pub const TIGHT: Limits = Limits {
    max_connections: 64,
    max_header_bytes: 4096,
    header_timeout: Duration::from_secs(1),
    body_timeout: Duration::from_secs(1),
    min_body_rate: 100,
};

/// Longest any helper here waits; a test that reaches it has found a server that keeps a
/// hostile client forever.
pub const GIVE_UP: Duration = Duration::from_secs(30);

/// How a trickling client's connection ended.
#[derive(Debug)]
pub struct Dropped {
    /// From the first byte sent to the server closing the connection.
    pub after: Duration,
    /// Everything the server sent before closing.
    pub answer: Vec<u8>,
    /// Bytes of the request the server got before closing.
    pub sent: usize,
}

impl Dropped {
    pub fn status(&self) -> Option<u16> {
        status(&self.answer)
    }
}

/// Sends `request` one byte every `every` (the whole `head` first, if any), reading all the
/// while, until the server closes the connection. Panics if it is still open after
/// [`GIVE_UP`] or once every byte went out and the server did not close within `GIVE_UP`.
pub async fn trickle(
    address: SocketAddr,
    head: Vec<u8>,
    request: Vec<u8>,
    every: Duration,
) -> Dropped {
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    if !head.is_empty() {
        writer.write_all(&head).await.expect("send the head");
    }
    let mut ticks = tokio::time::interval(every);
    loop {
        assert!(started.elapsed() < GIVE_UP, "the server kept a trickling client for {GIVE_UP:?}");
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            _ = ticks.tick(), if sent < request.len() => {
                if writer.write_all(&request[sent..=sent]).await.is_err() {
                    // Closed by the server; read what it said first.
                    let _ = tokio::time::timeout(Duration::from_secs(1), reader.read_to_end(&mut answer)).await;
                    break;
                }
                sent += 1;
            }
            () = tokio::time::sleep(GIVE_UP) => panic!("the server neither answered nor closed"),
        }
    }
    Dropped { after: started.elapsed(), answer, sent }
}

/// Sends `request` at once and reads the answer until the server closes (send
/// `connection: close`).
pub async fn exchange(address: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut answer = Vec::new();
    tokio::time::timeout(GIVE_UP, async {
        // The server may answer and close before reading all of it (431, 413).
        let _ = stream.write_all(request).await;
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the server neither answered nor closed");
    answer
}

/// The status code of a raw HTTP/1.1 answer.
pub fn status(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\r').next()?;
    std::str::from_utf8(line).ok()?.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The body of a raw HTTP/1.1 answer (not chunked), as text.
pub fn body(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// Opens idle connections to a server capped at `cap` until `probe` (sent on one more
/// connection) is refused, and returns them with the refusal. A server frees a slot only once
/// it has seen a closed connection close, so connections a test made before may still count
/// for a moment; panics if the probe is still served with `2 × cap` connections held.
pub async fn hold_until_refused(
    address: SocketAddr,
    cap: usize,
    probe: impl Fn() -> Vec<u8>,
) -> (Vec<TcpStream>, Vec<u8>) {
    let mut held = Vec::new();
    loop {
        held.push(TcpStream::connect(address).await.expect("connect"));
        let answer = exchange(address, &probe()).await;
        if held.len() >= cap && status(&answer) == Some(503) {
            return (held, answer);
        }
        assert!(held.len() < 2 * cap, "{} connections held and still served", held.len());
    }
}
