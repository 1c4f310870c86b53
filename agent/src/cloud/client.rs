//! The HTTP side: DigitalOcean's reserved-IP API and the droplet metadata service.
//!
//! Every request has a timeout ([`API_TIMEOUT`], [`METADATA_TIMEOUT`]), ignores proxy variables
//! (the metadata service is link-local; the API token must not go through an unexpected proxy)
//! and follows no redirects. The token is sent only as `Authorization: Bearer`, in a header value
//! marked sensitive; it never appears in an error or in `Debug`.

use std::{
    fmt,
    future::Future,
    net::Ipv4Addr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use reqwest::{
    header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE},
    Method, StatusCode,
};
use serde_json::Value;

use super::{
    error::ApiError,
    policy::{rate_limit_wait, API_CONNECT_TIMEOUT, API_TIMEOUT, METADATA_TIMEOUT},
};
use crate::config::Secret;

/// What the API says about the reserved IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpState {
    /// The droplet it points to, if any.
    pub holder: Option<u64>,
    /// An action on it is in progress.
    pub locked: bool,
}

/// Status of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionStatus {
    /// `in-progress`.
    InProgress,
    /// `completed`.
    Completed,
    /// `errored`.
    Errored,
    /// Anything else (kept verbatim).
    Other(String),
}

/// An action on the reserved IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionState {
    /// Action id.
    pub id: u64,
    /// Its status.
    pub status: ActionStatus,
}

/// The reserved-IP API as the takeover uses it. Implemented by [`DoClient`] and by the fakes of
/// the unit tests.
pub trait Api {
    /// `GET /v2/reserved_ips/{ip}`.
    fn get_ip(&self) -> impl Future<Output = Result<IpState, ApiError>>;
    /// `POST /v2/reserved_ips/{ip}/actions` `{"type":"assign","droplet_id":N}`.
    fn assign(&self, droplet: u64) -> impl Future<Output = Result<ActionState, ApiError>>;
    /// `GET /v2/reserved_ips/{ip}/actions/{id}`.
    fn get_action(&self, id: u64) -> impl Future<Output = Result<ActionState, ApiError>>;
    /// The IP's actions that are in progress (`GET /v2/reserved_ips/{ip}/actions`).
    fn pending_actions(&self) -> impl Future<Output = Result<Vec<ActionState>, ApiError>>;
}

impl<T: Api> Api for std::rc::Rc<T> {
    fn get_ip(&self) -> impl Future<Output = Result<IpState, ApiError>> {
        (**self).get_ip()
    }
    fn assign(&self, droplet: u64) -> impl Future<Output = Result<ActionState, ApiError>> {
        (**self).assign(droplet)
    }
    fn get_action(&self, id: u64) -> impl Future<Output = Result<ActionState, ApiError>> {
        (**self).get_action(id)
    }
    fn pending_actions(&self) -> impl Future<Output = Result<Vec<ActionState>, ApiError>> {
        (**self).pending_actions()
    }
}

/// Client of the reserved-IP API for one IP.
pub struct DoClient {
    http: reqwest::Client,
    base: String,
    ip: Ipv4Addr,
    auth: HeaderValue,
    timeout: Duration,
}

impl fmt::Debug for DoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoClient")
            .field("base", &self.base)
            .field("ip", &self.ip)
            .field("token", &crate::config::REDACTED)
            .finish()
    }
}

fn transport(what: &'static str, timeout: Duration, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        return ApiError::Timeout { what, timeout };
    }
    // The innermost cause (e.g. "Connection refused (os error 111)"), never the URL.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    ApiError::Transport {
        what,
        detail: format!("{kind}: {cause}"),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Turns an error answer into an [`ApiError::Status`] (body `{"id","message","request_id"}`).
pub fn status_error(
    what: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: u64,
) -> ApiError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let wait = (status == 429)
        .then(|| {
            rate_limit_wait(
                header(headers, "retry-after"),
                header(headers, "ratelimit-reset"),
                now_unix,
            )
        })
        .flatten();
    ApiError::Status {
        what,
        status,
        id: text("id").unwrap_or_default(),
        message: text("message")
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect(),
        request_id: text("request_id")
            .or_else(|| header(headers, "x-request-id").map(str::to_owned)),
        wait,
    }
}

/// Parses `{"reserved_ip":{...}}` (or `{"floating_ip":{...}}`).
pub fn parse_ip(body: &[u8]) -> Result<IpState, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let ip = v
        .get("reserved_ip")
        .or_else(|| v.get("floating_ip"))
        .ok_or("no 'reserved_ip' object")?;
    let holder = match ip.get("droplet") {
        None | Some(Value::Null) => None,
        Some(d) => Some(
            d.get("id")
                .and_then(Value::as_u64)
                .ok_or("'droplet' without a numeric 'id'")?,
        ),
    };
    Ok(IpState {
        holder,
        locked: ip.get("locked").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn action_of(a: &Value) -> Result<ActionState, String> {
    let id = a
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("action without a numeric 'id'")?;
    let status = match a.get("status").and_then(Value::as_str) {
        Some("in-progress") => ActionStatus::InProgress,
        Some("completed") => ActionStatus::Completed,
        Some("errored") => ActionStatus::Errored,
        Some(other) => ActionStatus::Other(other.to_owned()),
        None => return Err("action without 'status'".to_owned()),
    };
    Ok(ActionState { id, status })
}

/// Parses `{"action":{...}}`.
pub fn parse_action(body: &[u8]) -> Result<ActionState, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    action_of(v.get("action").ok_or("no 'action' object")?)
}

/// Parses `{"actions":[...]}` and keeps the in-progress ones.
pub fn parse_pending(body: &[u8]) -> Result<Vec<ActionState>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .get("actions")
        .and_then(Value::as_array)
        .ok_or("no 'actions' list")?;
    Ok(list
        .iter()
        .filter_map(|a| action_of(a).ok())
        .filter(|a| a.status == ActionStatus::InProgress)
        .collect())
}

/// The `Authorization: Bearer TOKEN` value, on a buffer that is cleared when the last clone of
/// the header value is dropped: the bytes live in a `Zeroizing<Vec<u8>>` sized up front (no
/// reallocation leaves a copy), owned by the `Bytes` the header shares (`Bytes::from_owner`);
/// `HeaderValue::from_maybe_shared` keeps that `Bytes` without copying it, and every request's
/// header is a reference-counted clone of it.
///
/// What this does not cover, honestly: to send a request, hyper copies the header into the
/// connection's write buffer (HTTP/1) and rustls copies that plaintext into its TLS record
/// buffers; those buffers belong to reqwest's connection pool and are freed without being
/// cleared. The process is non-dumpable while it holds a token (see `config::validate`), so
/// such leftovers are not written to a core file.
fn bearer(token: &Secret) -> Result<HeaderValue, ApiError> {
    const PREFIX: &[u8] = b"Bearer ";
    let t = token.expose().as_bytes();
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(PREFIX.len() + t.len()));
    buf.extend_from_slice(PREFIX);
    buf.extend_from_slice(t);
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf)).map_err(|_| {
        ApiError::Setup("the token contains characters not allowed in an HTTP header".to_owned())
    })
}

impl DoClient {
    /// A client of `api_url` (e.g. `https://api.digitalocean.com`) for `ip`.
    pub fn new(api_url: &str, ip: Ipv4Addr, token: &Secret) -> Result<Self, ApiError> {
        Self::with_timeout(api_url, ip, token, API_TIMEOUT)
    }

    /// As [`DoClient::new`] with another request timeout.
    pub fn with_timeout(
        api_url: &str,
        ip: Ipv4Addr,
        token: &Secret,
        timeout: Duration,
    ) -> Result<Self, ApiError> {
        let mut auth = bearer(token)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(API_CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("xvrrp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Setup(format!("{e}")))?;
        Ok(Self {
            http,
            base: api_url.trim_end_matches('/').to_owned(),
            ip,
            auth,
            timeout,
        })
    }

    /// One request, its latency and outcome recorded for the metrics ([`super::calls`]).
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Vec<u8>, ApiError> {
        let t0 = std::time::Instant::now();
        let r = self.request(what, method, path, body).await;
        let op = super::calls::operation(what);
        super::calls::record(
            op,
            self.ip.to_string(),
            super::calls::outcome(&r),
            t0.elapsed(),
        );
        r
    }

    async fn request(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport(what, self.timeout, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(what, self.timeout, &e))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(status_error(
                what,
                status.as_u16(),
                &headers,
                &bytes,
                now_unix(),
            ))
        }
    }
}

impl Api for DoClient {
    async fn get_ip(&self) -> Result<IpState, ApiError> {
        const WHAT: &str = "GET reserved IP";
        let b = self
            .call(
                WHAT,
                Method::GET,
                &format!("/v2/reserved_ips/{}", self.ip),
                None,
            )
            .await?;
        parse_ip(&b).map_err(|detail| ApiError::Decode { what: WHAT, detail })
    }

    async fn assign(&self, droplet: u64) -> Result<ActionState, ApiError> {
        const WHAT: &str = "assign";
        /// The body of `POST /v2/reserved_ips/{ip}/actions`.
        #[derive(serde::Serialize)]
        struct Assign {
            #[serde(rename = "type")]
            kind: &'static str,
            droplet_id: u64,
        }
        let body = serde_json::to_string(&Assign {
            kind: "assign",
            droplet_id: droplet,
        })
        .unwrap_or_default();
        let b = self
            .call(
                WHAT,
                Method::POST,
                &format!("/v2/reserved_ips/{}/actions", self.ip),
                Some(body),
            )
            .await?;
        parse_action(&b).map_err(|detail| ApiError::Decode { what: WHAT, detail })
    }

    async fn get_action(&self, id: u64) -> Result<ActionState, ApiError> {
        const WHAT: &str = "GET action";
        let b = self
            .call(
                WHAT,
                Method::GET,
                &format!("/v2/reserved_ips/{}/actions/{id}", self.ip),
                None,
            )
            .await?;
        parse_action(&b).map_err(|detail| ApiError::Decode { what: WHAT, detail })
    }

    async fn pending_actions(&self) -> Result<Vec<ActionState>, ApiError> {
        const WHAT: &str = "GET actions";
        let b = self
            .call(
                WHAT,
                Method::GET,
                &format!("/v2/reserved_ips/{}/actions?per_page=20", self.ip),
                None,
            )
            .await?;
        parse_pending(&b).map_err(|detail| ApiError::Decode { what: WHAT, detail })
    }
}

/// What the metadata request is called in errors and metrics.
const METADATA_ID: &str = "metadata droplet id";

/// Client of the droplet metadata service (no auth, plain text).
#[derive(Debug, Clone)]
pub struct Metadata {
    http: reqwest::Client,
    base: String,
}

impl Metadata {
    /// A client of `metadata_url` (e.g. `http://169.254.169.254`).
    pub fn new(metadata_url: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(METADATA_TIMEOUT)
            .timeout(METADATA_TIMEOUT)
            .build()
            .map_err(|e| ApiError::Setup(format!("{e}")))?;
        Ok(Self {
            http,
            base: metadata_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /metadata/v1/id`: this droplet's id (its latency and outcome recorded for the
    /// metrics).
    pub async fn droplet_id(&self) -> Result<u64, ApiError> {
        let t0 = std::time::Instant::now();
        let r = self.read_droplet_id().await;
        let op = super::calls::operation(METADATA_ID);
        super::calls::record(
            op,
            "metadata".to_owned(),
            super::calls::outcome(&r),
            t0.elapsed(),
        );
        r
    }

    async fn read_droplet_id(&self) -> Result<u64, ApiError> {
        const WHAT: &str = METADATA_ID;
        let resp = self
            .http
            .get(format!("{}/metadata/v1/id", self.base))
            .send()
            .await
            .map_err(|e| transport(WHAT, METADATA_TIMEOUT, &e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| transport(WHAT, METADATA_TIMEOUT, &e))?;
        if status != StatusCode::OK {
            return Err(ApiError::Status {
                what: WHAT,
                status: status.as_u16(),
                id: String::new(),
                message: String::new(),
                request_id: None,
                wait: None,
            });
        }
        text.trim().parse::<u64>().map_err(|_| ApiError::Decode {
            what: WHAT,
            detail: format!(
                "not a droplet id: {:?}",
                text.chars().take(40).collect::<String>()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn parses_ip_states() {
        let held = br#"{"reserved_ip":{"ip":"45.55.96.47","region":{"slug":"nyc3"},"droplet":{"id":2756294,"name":"a"},"locked":false,"project_id":"p"}}"#;
        assert_eq!(
            parse_ip(held),
            Ok(IpState {
                holder: Some(2_756_294),
                locked: false
            })
        );
        let free = br#"{"reserved_ip":{"ip":"45.55.96.47","droplet":null,"locked":true}}"#;
        assert_eq!(
            parse_ip(free),
            Ok(IpState {
                holder: None,
                locked: true
            })
        );
        let old = br#"{"floating_ip":{"droplet":{"id":7}}}"#;
        assert_eq!(parse_ip(old).map(|s| s.holder), Ok(Some(7)));
        assert!(parse_ip(b"<html>").is_err());
        assert!(parse_ip(br#"{"reserved_ip":{"droplet":{"id":"x"}}}"#).is_err());
    }

    #[test]
    fn parses_actions() {
        let a = br#"{"action":{"id":1000001,"status":"in-progress","type":"assign_ip","resource_id":758603823}}"#;
        assert_eq!(
            parse_action(a),
            Ok(ActionState {
                id: 1_000_001,
                status: ActionStatus::InProgress
            })
        );
        let list = br#"{"actions":[{"id":1,"status":"completed"},{"id":2,"status":"in-progress"}],"links":{},"meta":{"total":2}}"#;
        assert_eq!(
            parse_pending(list),
            Ok(vec![ActionState {
                id: 2,
                status: ActionStatus::InProgress
            }])
        );
        assert!(parse_action(br#"{"action":{"id":1}}"#).is_err());
    }

    #[test]
    fn error_bodies_and_rate_limit_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("hdr-id"));
        h.insert("retry-after", HeaderValue::from_static("12"));
        h.insert("ratelimit-reset", HeaderValue::from_static("2000"));
        let e = status_error(
            "assign",
            429,
            &h,
            br#"{"id":"too_many_requests","message":"API rate limit exceeded."}"#,
            1000,
        );
        assert_eq!(
            e,
            ApiError::Status {
                what: "assign",
                status: 429,
                id: "too_many_requests".into(),
                message: "API rate limit exceeded.".into(),
                request_id: Some("hdr-id".into()),
                wait: Some(Duration::from_secs(12)),
            }
        );
        h.remove("retry-after");
        let e = status_error("assign", 429, &h, b"", 1990);
        assert_eq!(
            e.class(),
            super::super::error::Class::RateLimited(Some(Duration::from_secs(10)))
        );
        let e = status_error(
            "x",
            500,
            &HeaderMap::new(),
            br#"{"id":"server_error","message":"Unexpected server-side error","request_id":"body-id"}"#,
            0,
        );
        assert_eq!(
            e.to_string(),
            "x: HTTP 500 server_error: Unexpected server-side error (request id body-id)"
        );
    }

    #[test]
    fn token_never_in_debug() {
        let c = DoClient::new(
            "http://127.0.0.1:9",
            Ipv4Addr::new(203, 0, 113, 10),
            &Secret::new("dop_v1_secret_in_debug"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = format!("{c:?}");
        assert!(!d.contains("dop_v1"), "{d}");
        assert!(d.contains("<redacted>"));
        let e = DoClient::new("http://x", Ipv4Addr::LOCALHOST, &Secret::new("bad\ntoken"))
            .map(|_| ())
            .unwrap_err();
        assert!(!e.to_string().contains("bad"));
    }
}
