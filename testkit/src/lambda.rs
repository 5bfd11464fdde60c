//! A local Lambda: the real `wkp1-lambda` binary, as Lambda runs it, behind an HTTP front
//! that turns every request into a Function URL event.
//!
//! - The **runtime API** (`/2018-06-01/runtime/...`) hands events to the processes and takes
//!   their answers, as the Lambda service does; several processes poll it, as warm instances
//!   of one function do.
//! - The **front** serves any HTTP request as Lambda's Function URL does: an event in payload
//!   format 2.0 (body base64 unless it is text), the 6 MB invocation payload limit both ways,
//!   and the response event turned back into HTTP.
//!
//! It exists so tests and the conformance kit reach the function through the same event
//! encoding, runtime client and process model as in AWS, with nothing mocked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Lambda's synchronous invocation payload limit, request and response alike.
pub const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// How long an instance may take to initialize (Lambda allows 10 s; a debug build is slower).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the front waits for an answer, like a function's configured timeout.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(120);

type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

struct Invocation {
    id: String,
    event: Vec<u8>,
    reply: Reply,
}

/// What went through the front, for tests that check bytes bypass the function.
#[derive(Debug, Default)]
pub struct Traffic {
    pub invocations: AtomicU64,
    /// Request body bytes the front received.
    pub bytes_in: AtomicU64,
    /// Response body bytes the front sent.
    pub bytes_out: AtomicU64,
}

struct Runtime {
    traffic: Arc<Traffic>,
    queue: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    submit: mpsc::UnboundedSender<Invocation>,
    pending: Mutex<HashMap<String, Reply>>,
    next_id: AtomicU64,
    /// Polls of `/invocation/next` so far: an instance's first poll ends its init.
    polls: tokio::sync::watch::Sender<u64>,
}

/// A running local Lambda; everything stops when it is dropped.
#[derive(Debug)]
pub struct LocalLambda {
    /// The Function URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    pub traffic: Arc<Traffic>,
    processes: Vec<tokio::process::Child>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    logs: Vec<PathBuf>,
    _log_dir: tempfile::TempDir,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl LocalLambda {
    /// Starts `instances` processes of `binary` with `env` (and nothing else from this
    /// process's environment but `PATH`), and the front.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        instances: usize,
    ) -> anyhow::Result<Self> {
        let (submit, queue) = mpsc::unbounded_channel();
        let traffic = Arc::new(Traffic::default());
        let runtime = Arc::new(Runtime {
            traffic: traffic.clone(),
            queue: Mutex::new(queue),
            submit,
            pending: Mutex::new(HashMap::new()),
            next_id: 0.into(),
            polls: tokio::sync::watch::channel(0).0,
        });
        let mut polls = runtime.polls.subscribe();
        let runtime_api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let runtime_address = runtime_api.local_addr()?;
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", front.local_addr()?);
        let api = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // Take any answer whole; the front applies Lambda's limit to it.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(runtime.clone());
        let front_app = Router::new().fallback(invoke).with_state(runtime);
        // Small answers must not wait for delayed ACKs (Nagle), here as in AWS.
        let nodelay = |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        };
        let runtime_api = runtime_api.tap_io(nodelay);
        let front = front.tap_io(nodelay);
        let servers = vec![
            tokio::spawn(async move {
                let _ = axum::serve(runtime_api, api).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(front, front_app).await;
            }),
        ];

        let log_dir = tempfile::tempdir()?;
        let mut processes = Vec::new();
        let mut logs = Vec::new();
        for instance in 0..instances.max(1) {
            let log = log_dir.path().join(format!("instance-{instance}.log"));
            let file = std::fs::File::create(&log)?;
            let mut command = tokio::process::Command::new(binary);
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("AWS_LAMBDA_RUNTIME_API", runtime_address.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", "wkp1-local")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .kill_on_drop(true);
            processes.push(command.spawn().with_context(|| format!("start {}", binary.display()))?);
            logs.push(log);
        }
        let mut lambda = Self { url, traffic, processes, servers, logs, _log_dir: log_dir };
        // Ready when every instance has finished its init and asked for work, as Lambda only
        // routes to initialized instances; an instance that exits during init fails the start.
        let wanted = lambda.processes.len() as u64;
        let deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
        while *polls.borrow_and_update() < wanted {
            if !lambda.running() {
                anyhow::bail!("an instance exited during init:\n{}", lambda.logs());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "instances did not finish init within {INIT_TIMEOUT:?}:\n{}",
                lambda.logs()
            );
            let _ = tokio::time::timeout(Duration::from_millis(50), polls.changed()).await;
        }
        Ok(lambda)
    }

    /// Everything the processes wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }

    /// Whether every process is still running.
    pub fn running(&mut self) -> bool {
        self.processes.iter_mut().all(|p| matches!(p.try_wait(), Ok(None)))
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.start_kill();
        }
        for server in &self.servers {
            server.abort();
        }
    }
}

async fn next(State(runtime): State<Arc<Runtime>>) -> Response {
    runtime.polls.send_modify(|polls| *polls += 1);
    let Some(invocation) = runtime.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    runtime.pending.lock().await.insert(invocation.id.clone(), invocation.reply);
    let deadline = std::time::SystemTime::now() + INVOCATION_TIMEOUT;
    let deadline_ms =
        deadline.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("lambda-runtime-aws-request-id", invocation.id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:wkp1-local".into(),
    );
    set("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".into());
    set("content-type", "application/json".into());
    (headers, invocation.event).into_response()
}

async fn respond(
    State(runtime): State<Arc<Runtime>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    finish(&runtime, &id, Ok(body.to_vec())).await
}

async fn fail(
    State(runtime): State<Arc<Runtime>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    finish(&runtime, &id, Err(String::from_utf8_lossy(&body).into_owned())).await
}

async fn finish(runtime: &Runtime, id: &str, outcome: Result<Vec<u8>, String>) -> StatusCode {
    match runtime.pending.lock().await.remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn init_error(body: axum::body::Bytes) -> StatusCode {
    tracing::error!("the function failed to initialize: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

fn text_content(headers: &HeaderMap) -> bool {
    headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| {
        t.starts_with("text/") || t.starts_with("application/json") || t.contains("+json")
    })
}

/// The Function URL event (payload format 2.0) for one HTTP request.
pub fn function_url_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Value {
    let mut joined: HashMap<String, String> = HashMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        joined
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "wkp1local",
            "domainName": "wkp1local.lambda-url.us-east-1.on.aws",
            "domainPrefix": "wkp1local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": now.as_millis() as u64,
        },
        "isBase64Encoded": false,
    });
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if text_content(headers) => event["body"] = json!(text),
            _ => {
                event["body"] = json!(BASE64.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

/// The HTTP response a Function URL sends for a response event, and its body's length.
pub fn http_response(event: &[u8]) -> anyhow::Result<(Response, u64)> {
    let event: Value = serde_json::from_slice(event).context("response event is not JSON")?;
    let status = event["statusCode"].as_u64().context("response event without statusCode")?;
    let body = match event["body"].as_str() {
        None => Vec::new(),
        Some(body) if event["isBase64Encoded"].as_bool() == Some(true) => {
            BASE64.decode(body).context("response body is not base64")?
        }
        Some(body) => body.as_bytes().to_vec(),
    };
    let length = body.len() as u64;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(u16::try_from(status)?)?;
    if let Some(headers) = event["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) =
                (HeaderName::from_bytes(name.as_bytes()), value.as_str().map(HeaderValue::from_str))
            {
                response.headers_mut().insert(name, value);
            }
        }
    }
    Ok((response, length))
}

fn lambda_error(status: StatusCode, message: &str) -> Response {
    (status, [("content-type", "application/json")], json!({ "Message": message }).to_string())
        .into_response()
}

async fn invoke(State(runtime): State<Arc<Runtime>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, PAYLOAD_LIMIT + 1).await else {
        return lambda_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request must be smaller than 6291456 bytes",
        );
    };
    let id = format!("{:08x}", runtime.next_id.fetch_add(1, Ordering::Relaxed));
    runtime.traffic.invocations.fetch_add(1, Ordering::Relaxed);
    runtime.traffic.bytes_in.fetch_add(body.len() as u64, Ordering::Relaxed);
    let event = function_url_event(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        &body,
        &id,
    );
    let event = event.to_string().into_bytes();
    if event.len() > PAYLOAD_LIMIT {
        return lambda_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request must be smaller than 6291456 bytes",
        );
    }
    let (reply, answer) = oneshot::channel();
    if runtime.submit.send(Invocation { id, event, reply }).is_err() {
        return lambda_error(StatusCode::SERVICE_UNAVAILABLE, "the runtime stopped");
    }
    match tokio::time::timeout(INVOCATION_TIMEOUT, answer).await {
        Ok(Ok(Ok(response))) if response.len() > PAYLOAD_LIMIT => lambda_error(
            StatusCode::BAD_GATEWAY,
            "Response payload size exceeded maximum allowed payload size",
        ),
        Ok(Ok(Ok(response))) => match http_response(&response) {
            Ok((response, length)) => {
                runtime.traffic.bytes_out.fetch_add(length, Ordering::Relaxed);
                response
            }
            Err(e) => {
                lambda_error(StatusCode::BAD_GATEWAY, &format!("malformed response event: {e:#}"))
            }
        },
        Ok(Ok(Err(error))) => lambda_error(StatusCode::BAD_GATEWAY, &error),
        Ok(Err(_)) => lambda_error(StatusCode::BAD_GATEWAY, "the invocation was dropped"),
        Err(_) => lambda_error(StatusCode::GATEWAY_TIMEOUT, "Task timed out"),
    }
}
