#![allow(dead_code)]
//! Minimal W3C WebDriver client for browser tests, driving a local
//! `chromedriver` + headless Chromium.
//!
//! Dependencies: `tokio` (net, io-util, process, time), `serde_json`.
//! It speaks just enough HTTP/1.1 (one request per connection,
//! `Connection: close`) to talk to chromedriver on 127.0.0.1.
//!
//! Typical use:
//!
//! ```ignore
//! let Some(driver) = Driver::start().await? else { return Ok(()) }; // skipped
//! let s = driver.session().await?;
//! s.goto("http://127.0.0.1:8080/").await?;
//! s.wait_for("#app", Duration::from_secs(5)).await?.click().await?;
//! s.close().await?;
//! ```

use serde_json::{Map, Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Result type used throughout; the error is a human-readable message
/// (for WebDriver failures it contains the error JSON, minus the stacktrace).
pub(crate) type WdResult<T> = Result<T, String>;

/// The W3C web element identifier key (WebDriver spec §12.1; note the
/// exact spelling, chromedriver rejects anything else).
pub(crate) const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Default chromedriver path used when `CHROMEDRIVER` is unset.
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Default browser binary used when `CHROMIUM` is unset.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// How long to wait for chromedriver's `/status` to report ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for a single HTTP round trip to chromedriver.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ---------------------------------------------------------------------------

/// Connection details for one chromedriver instance (cheap to clone).
#[derive(Clone, Debug)]
struct Http {
    port: u16,
}

impl Http {
    /// Performs one request and returns `(status, body)`.
    ///
    /// chromedriver answers `Connection: close` requests with a
    /// `Connection:close` header but may keep the socket open, so the body
    /// is framed by `Content-Length` (or chunking), never by EOF alone.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> WdResult<(u16, Vec<u8>)> {
        let req = build_request(self.port, method, path, body);
        let io = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port))
                .await
                .map_err(|e| format!("connect 127.0.0.1:{}: {e}", self.port))?;
            stream
                .write_all(&req)
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut reader = ResponseReader::default();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if let Some(resp) = reader.feed(&chunk[..n], n == 0)? {
                    return Ok::<_, String>(resp);
                }
            }
        };
        tokio::time::timeout(timeout, io)
            .await
            .map_err(|_| format!("{method} {path}: no complete response within {timeout:?}"))?
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    /// Performs a WebDriver command and returns the response's `value` field.
    /// Non-2xx statuses and `{"value":{"error":..}}` bodies become `Err`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        self.call_timeout(method, path, body, REQUEST_TIMEOUT).await
    }

    /// [`Http::call`] with an explicit round-trip timeout.
    async fn call_timeout(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> WdResult<Value> {
        // W3C requires a JSON body on every POST, even when empty.
        let body = match (method, body) {
            ("POST", None) => Some(Value::Object(Map::new())),
            (_, b) => b,
        };
        let (status, bytes) = self.raw(method, path, body.as_ref(), timeout).await?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{method} {path}: HTTP {status}: invalid JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        let mut value = match json {
            Value::Object(mut m) => m.remove("value").unwrap_or(Value::Null),
            other => other,
        };
        let is_error = value.get("error").is_some_and(Value::is_string);
        if !(200..300).contains(&status) || is_error {
            if let Value::Object(m) = &mut value {
                m.remove("stacktrace");
            }
            return Err(format!("{method} {path}: HTTP {status}: {value}"));
        }
        Ok(value)
    }

    /// Synchronous, best-effort request used from `Drop` impls where no
    /// async context is available. Waits for the response; errors are ignored.
    fn blocking(&self, method: &str, path: &str, timeout: Duration) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        let body = (method == "POST").then(|| Value::Object(Map::new()));
        if stream
            .write_all(&build_request(self.port, method, path, body.as_ref()))
            .is_err()
        {
            return;
        }
        let mut reader = ResponseReader::default();
        let mut chunk = vec![0u8; 16 * 1024];
        while let Ok(n) = stream.read(&mut chunk) {
            if !matches!(reader.feed(&chunk[..n], n == 0), Ok(None)) {
                return;
            }
        }
    }
}

/// Serialises an HTTP/1.1 request with `Connection: close`.
fn build_request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Vec<u8> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if body.is_some() {
        req.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    req.push_str(&payload);
    req.into_bytes()
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug)]
enum Framing {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither header: the body runs until the server closes.
    UntilEof,
}

/// Parsed status line and framing of a response.
#[derive(Clone, Copy, Debug)]
struct Head {
    status: u16,
    framing: Framing,
    /// Offset of the first body byte in the raw buffer.
    body_start: usize,
}

/// Incrementally accumulates raw bytes until a full response is present.
#[derive(Debug, Default)]
struct ResponseReader {
    buf: Vec<u8>,
    head: Option<Head>,
}

impl ResponseReader {
    /// Appends `bytes` (`eof` = the peer closed) and returns
    /// `Some((status, body))` once the response is complete.
    fn feed(&mut self, bytes: &[u8], eof: bool) -> WdResult<Option<(u16, Vec<u8>)>> {
        self.buf.extend_from_slice(bytes);
        if self.head.is_none() {
            self.head = parse_head(&self.buf)?;
        }
        let Some(head) = self.head else {
            return if eof {
                Err(format!(
                    "connection closed before headers ended ({} bytes)",
                    self.buf.len()
                ))
            } else {
                Ok(None)
            };
        };
        let rest = &self.buf[head.body_start..];
        let body = match head.framing {
            Framing::Length(n) => rest.get(..n).map(<[u8]>::to_vec),
            Framing::Chunked => decode_chunked(rest)?,
            Framing::UntilEof => eof.then(|| rest.to_vec()),
        };
        match body {
            Some(b) => Ok(Some((head.status, b))),
            None if eof => Err(format!(
                "connection closed mid-body ({} body bytes)",
                rest.len()
            )),
            None => Ok(None),
        }
    }
}

/// Parses the status line and headers, or `Ok(None)` if they are incomplete.
fn parse_head(raw: &[u8]) -> WdResult<Option<Head>> {
    let Some(sep) = find_subslice(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..sep]).map_err(|e| format!("non-UTF-8 headers: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut framing = Framing::UntilEof;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                framing = Framing::Chunked;
            } else if name.eq_ignore_ascii_case("content-length")
                && !matches!(framing, Framing::Chunked)
            {
                let n = value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
                framing = Framing::Length(n);
            }
        }
    }
    Ok(Some(Head {
        status,
        framing,
        body_start: sep + 4,
    }))
}

/// Parses a complete HTTP/1.1 response into `(status, body)`.
#[cfg(test)]
fn parse_response(raw: &[u8]) -> WdResult<(u16, Vec<u8>)> {
    ResponseReader::default()
        .feed(raw, true)?
        .ok_or_else(|| "incomplete HTTP response".to_string())
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers are ignored);
/// `Ok(None)` means more data is needed.
fn decode_chunked(mut data: &[u8]) -> WdResult<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find_subslice(data, b"\r\n") else {
            return Ok(None);
        };
        let size_line =
            std::str::from_utf8(&data[..eol]).map_err(|_| "chunked body: bad size line")?;
        let hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| format!("chunked body: bad size {hex:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            // Last chunk; the body ends after optional trailers and a blank line.
            let done = data.starts_with(b"\r\n") || find_subslice(data, b"\r\n\r\n").is_some();
            return Ok(done.then_some(out));
        }
        let Some(chunk) = data.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(chunk);
        let Some(after) = data.get(size + 2..) else {
            return Ok(None);
        };
        data = after;
    }
}

/// Returns the index of the first occurrence of `needle` in `hay`.
fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a single URL path segment (RFC 3986 unreserved kept).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes standard (RFC 4648) base64, ignoring whitespace and padding.
pub(crate) fn base64_decode(input: &str) -> WdResult<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = sextet(c).ok_or_else(|| format!("invalid base64 byte {c:#04x}"))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Masked to one byte, so the cast cannot truncate meaningful bits.
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

/// Returns a fresh, empty directory under the system temp dir.
fn fresh_temp_dir(prefix: &str) -> WdResult<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Reads an env var, treating empty values as unset.
fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

/// A running chromedriver process. Dropping it shuts chromedriver down
/// (quitting any sessions it still owns) and kills the process.
#[derive(Debug)]
pub(crate) struct Driver {
    http: Http,
    child: Child,
}

impl Driver {
    /// Starts chromedriver (`$CHROMEDRIVER`, else `/usr/bin/chromedriver`) on a
    /// free port and waits up to 20 s for it to report ready.
    /// Returns `Ok(None)` if no chromedriver is available, so tests can skip.
    pub(crate) async fn start() -> WdResult<Option<Driver>> {
        let binary = match env_nonempty("CHROMEDRIVER") {
            Some(p) => PathBuf::from(p),
            None if Path::new(DEFAULT_CHROMEDRIVER).exists() => PathBuf::from(DEFAULT_CHROMEDRIVER),
            None => return Ok(None),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("pick free port: {e}"))?
            .port();
        let mut cmd = Command::new(&binary);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Set CHROMEDRIVER_LOG=/path/file to capture a verbose chromedriver log.
        if let Some(log) = env_nonempty("CHROMEDRIVER_LOG") {
            cmd.arg(format!("--log-path={log}")).arg("--verbose");
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let mut driver = Driver {
            http: Http { port },
            child,
        };
        driver.wait_ready().await?;
        Ok(Some(driver))
    }

    /// Polls `GET /status` until `ready` is true or the startup timeout passes.
    async fn wait_ready(&mut self) -> WdResult<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "chromedriver exited early with {status} (port {})",
                    self.http.port
                ));
            }
            let last_err = match self
                .http
                .call_timeout("GET", "/status", None, Duration::from_secs(2))
                .await
            {
                Ok(v) if v.get("ready").and_then(Value::as_bool) == Some(true) => return Ok(()),
                Ok(v) => format!("not ready: {v}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver not ready after {STARTUP_TIMEOUT:?}: {last_err}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The port chromedriver listens on.
    pub(crate) fn port(&self) -> u16 {
        self.http.port
    }

    /// Creates a new headless Chromium session (`$CHROMIUM`, else
    /// `/usr/bin/chromium`) with a fresh, throwaway profile directory.
    pub(crate) async fn session(&self) -> WdResult<Session> {
        let binary = env_nonempty("CHROMIUM").unwrap_or_else(|| DEFAULT_CHROMIUM.to_string());
        let profile = fresh_temp_dir("wd-profile")?;
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    // Leave dialogs open (instead of auto-dismissing them) so
                    // tests can inspect and answer them explicitly.
                    "unhandledPromptBehavior": "ignore",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let value = match self.http.call("POST", "/session", Some(caps)).await {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(e);
            }
        };
        let Some(id) = value.get("sessionId").and_then(Value::as_str) else {
            let _ = std::fs::remove_dir_all(&profile);
            return Err(format!("POST /session: no sessionId in {value}"));
        };
        Ok(Session {
            ctx: Ctx {
                http: self.http.clone(),
                base: format!("/session/{id}"),
            },
            profile,
            closed: false,
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ask chromedriver to quit its browsers first; a bare SIGKILL of
        // chromedriver would orphan the Chromium processes it launched.
        self.http
            .blocking("GET", "/shutdown", Duration::from_secs(5));
        let _ = self.child.start_kill();
    }
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

/// Session-scoped request context shared by `Session` and its elements.
#[derive(Clone, Debug)]
struct Ctx {
    http: Http,
    /// `/session/{id}`.
    base: String,
}

impl Ctx {
    /// Sends a command relative to the session URL and returns its `value`.
    async fn cmd(&self, method: &str, suffix: &str, body: Option<Value>) -> WdResult<Value> {
        self.http
            .call(method, &format!("{}{suffix}", self.base), body)
            .await
    }

    /// Converts a WebDriver element reference into an [`Element`].
    fn element(&self, v: &Value) -> WdResult<Element> {
        let id = v
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("not an element reference: {v}"))?;
        Ok(Element {
            ctx: self.clone(),
            id: id.to_string(),
        })
    }

    /// Converts a JSON array of element references into elements.
    fn elements(&self, v: &Value) -> WdResult<Vec<Element>> {
        v.as_array()
            .ok_or_else(|| format!("expected an array of elements, got {v}"))?
            .iter()
            .map(|e| self.element(e))
            .collect()
    }
}

/// Extracts a string `value`, failing with context otherwise.
fn as_string(v: Value, what: &str) -> WdResult<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("{what}: expected a string, got {other}")),
    }
}

/// Builds a CSS-selector locator body.
fn css_locator(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

/// A browser session. Call [`Session::close`] when done; if dropped
/// unclosed, the session is deleted with a blocking best-effort request.
#[derive(Debug)]
pub(crate) struct Session {
    ctx: Ctx,
    profile: PathBuf,
    closed: bool,
}

impl Session {
    /// The WebDriver session id.
    pub(crate) fn id(&self) -> &str {
        self.ctx.base.trim_start_matches("/session/")
    }

    /// Navigates to `url` and waits for the page load to finish.
    pub(crate) async fn goto(&self, url: &str) -> WdResult<()> {
        self.ctx
            .cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The current top-level browsing context URL.
    pub(crate) async fn current_url(&self) -> WdResult<String> {
        as_string(self.ctx.cmd("GET", "/url", None).await?, "current_url")
    }

    /// The document title.
    pub(crate) async fn title(&self) -> WdResult<String> {
        as_string(self.ctx.cmd("GET", "/title", None).await?, "title")
    }

    /// Finds the first element matching `css`; errors if there is none.
    pub(crate) async fn find(&self, css: &str) -> WdResult<Element> {
        let v = self
            .ctx
            .cmd("POST", "/element", Some(css_locator(css)))
            .await?;
        self.ctx.element(&v)
    }

    /// Finds all elements matching `css` (possibly none).
    pub(crate) async fn find_all(&self, css: &str) -> WdResult<Vec<Element>> {
        let v = self
            .ctx
            .cmd("POST", "/elements", Some(css_locator(css)))
            .await?;
        self.ctx.elements(&v)
    }

    /// Polls every 100 ms until an element matches `css` or `timeout` passes.
    pub(crate) async fn wait_for(&self, css: &str, timeout: Duration) -> WdResult<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(el) = self.find_all(css).await?.into_iter().next() {
                return Ok(el);
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {timeout:?} waiting for `{css}`"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a synchronous script (`return ...;` to yield a value). Use
    /// [`Element::as_arg`] to pass elements as `arguments[i]`.
    pub(crate) async fn execute(&self, script: &str, args: Vec<Value>) -> WdResult<Value> {
        self.ctx
            .cmd(
                "POST",
                "/execute/sync",
                Some(json!({ "script": script, "args": args })),
            )
            .await
    }

    /// Accepts (OK) the open alert/confirm/prompt.
    pub(crate) async fn accept_alert(&self) -> WdResult<()> {
        self.ctx.cmd("POST", "/alert/accept", None).await.map(drop)
    }

    /// Dismisses (Cancel) the open alert/confirm/prompt.
    pub(crate) async fn dismiss_alert(&self) -> WdResult<()> {
        self.ctx.cmd("POST", "/alert/dismiss", None).await.map(drop)
    }

    /// The message of the open alert/confirm/prompt.
    pub(crate) async fn alert_text(&self) -> WdResult<String> {
        as_string(
            self.ctx.cmd("GET", "/alert/text", None).await?,
            "alert_text",
        )
    }

    /// A PNG screenshot of the viewport.
    pub(crate) async fn screenshot_png(&self) -> WdResult<Vec<u8>> {
        let b64 = as_string(
            self.ctx.cmd("GET", "/screenshot", None).await?,
            "screenshot",
        )?;
        base64_decode(&b64)
    }

    /// The serialised DOM of the current page.
    pub(crate) async fn page_source(&self) -> WdResult<String> {
        as_string(self.ctx.cmd("GET", "/source", None).await?, "page_source")
    }

    /// Ends the session (quits the browser) and removes its profile dir.
    pub(crate) async fn close(mut self) -> WdResult<()> {
        self.closed = true;
        let res = self.ctx.cmd("DELETE", "", None).await.map(drop);
        let _ = std::fs::remove_dir_all(&self.profile);
        res
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.closed {
            self.ctx
                .http
                .blocking("DELETE", &self.ctx.base, Duration::from_secs(10));
            let _ = std::fs::remove_dir_all(&self.profile);
        }
    }
}

// ---------------------------------------------------------------------------
// Element
// ---------------------------------------------------------------------------

/// A reference to a DOM element within a session.
#[derive(Clone, Debug)]
pub(crate) struct Element {
    ctx: Ctx,
    id: String,
}

impl Element {
    /// The WebDriver element id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// JSON reference for passing this element to [`Session::execute`].
    pub(crate) fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Sends a command relative to `/session/{id}/element/{eid}`.
    async fn cmd(&self, method: &str, suffix: &str, body: Option<Value>) -> WdResult<Value> {
        self.ctx
            .cmd(method, &format!("/element/{}{suffix}", self.id), body)
            .await
    }

    /// Clicks the element (scrolling it into view first).
    pub(crate) async fn click(&self) -> WdResult<()> {
        self.cmd("POST", "/click", None).await.map(drop)
    }

    /// The rendered (visible) text of the element.
    pub(crate) async fn text(&self) -> WdResult<String> {
        as_string(self.cmd("GET", "/text", None).await?, "text")
    }

    /// The attribute `name`, or `None` if absent.
    pub(crate) async fn attr(&self, name: &str) -> WdResult<Option<String>> {
        match self
            .cmd("GET", &format!("/attribute/{}", path_segment(name)), None)
            .await?
        {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Ok(Some(other.to_string())),
        }
    }

    /// The DOM property `name` as JSON (`Null` if undefined).
    pub(crate) async fn prop(&self, name: &str) -> WdResult<Value> {
        self.cmd("GET", &format!("/property/{}", path_segment(name)), None)
            .await
    }

    /// Types `text` into the element.
    pub(crate) async fn send_keys(&self, text: &str) -> WdResult<()> {
        self.cmd("POST", "/value", Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    /// Clears an input/textarea/contenteditable element.
    pub(crate) async fn clear(&self) -> WdResult<()> {
        self.cmd("POST", "/clear", None).await.map(drop)
    }

    /// Finds the first descendant matching `css`; errors if there is none.
    pub(crate) async fn find(&self, css: &str) -> WdResult<Element> {
        let v = self.cmd("POST", "/element", Some(css_locator(css))).await?;
        self.ctx.element(&v)
    }

    /// Finds all descendants matching `css`.
    pub(crate) async fn find_all(&self, css: &str) -> WdResult<Vec<Element>> {
        let v = self
            .cmd("POST", "/elements", Some(css_locator(css)))
            .await?;
        self.ctx.elements(&v)
    }

    /// Whether a checkbox/radio/option is selected.
    pub(crate) async fn is_selected(&self) -> WdResult<bool> {
        match self.cmd("GET", "/selected", None).await? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("is_selected: expected a bool, got {other}")),
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn base64_roundtrip_vectors() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("Zm9v!").is_err());
    }

    #[test]
    fn parses_content_length_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length:11\r\n\r\n{\"value\":1}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (200, b"{\"value\":1}".to_vec())
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"va\r\n7\r\nlue\":2}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (404, b"{\"value\":2}".to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nxyz").unwrap(),
            (200, b"xyz".to_vec())
        );
    }

    #[test]
    fn reader_completes_without_eof_byte_by_byte() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length:11\r\nConnection:close\r\n\r\n{\"value\":1}"[..],
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"value\":1}\r\n0\r\n\r\n"[..],
        ] {
            let mut r = ResponseReader::default();
            let (last, init) = raw.split_last().unwrap();
            for b in init {
                assert_eq!(r.feed(std::slice::from_ref(b), false).unwrap(), None);
            }
            let done = r.feed(std::slice::from_ref(last), false).unwrap();
            assert_eq!(done, Some((200, b"{\"value\":1}".to_vec())));
        }
    }
}
