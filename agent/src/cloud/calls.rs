//! How long the DigitalOcean API and metadata requests took and how they ended, for the
//! metrics (`xvrrp_cloud_api_request_duration_seconds`, a histogram).
//!
//! A small process-wide table: the requests run in the takeover's tasks on the event loop's
//! thread, the metrics are rendered on the metrics thread, so it sits behind a `Mutex` that is
//! held for a few additions (recording) or one copy (rendering). Its size is bounded: a key is
//! (operation, target, outcome), with a handful of operations, one target per reserved IP
//! (plus `metadata`), and outcomes `ok`, `timeout`, `transport`, `decode`, `setup` or an HTTP
//! status code.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use super::error::ApiError;

/// Upper bounds of the histogram's buckets, in seconds (a request times out after 5 s, the
/// metadata service after less; +Inf is implied).
pub const BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What a row counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// `get_reserved_ip`, `assign`, `get_action`, `list_actions`, `metadata_droplet_id`.
    pub operation: &'static str,
    /// The reserved IP the request was about, or `metadata`.
    pub target: String,
    /// `ok`, `timeout`, `transport`, `decode`, `setup`, or the HTTP status of an error answer.
    pub outcome: String,
}

/// Requests of one key: count, total seconds and per-bucket counts (not cumulative; requests
/// slower than the last bound are counted in `count` only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallStats {
    /// Requests.
    pub count: u64,
    /// Their durations added up, in seconds.
    pub sum_seconds: f64,
    /// Requests per bucket of [`BUCKETS`] (each in the first bucket whose bound it does not
    /// exceed).
    pub buckets: [u64; BUCKETS.len()],
}

impl CallStats {
    /// Adds one request that took `took`.
    pub fn observe(&mut self, took: Duration) {
        let s = took.as_secs_f64();
        self.count += 1;
        self.sum_seconds += s;
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            if let Some(c) = self.buckets.get_mut(i) {
                *c += 1;
            }
        }
    }
}

static CALLS: Mutex<BTreeMap<CallKey, CallStats>> = Mutex::new(BTreeMap::new());

/// The outcome label of a finished request.
pub fn outcome<T>(r: &Result<T, ApiError>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(ApiError::Timeout { .. }) => "timeout".to_owned(),
        Err(ApiError::Transport { .. }) => "transport".to_owned(),
        Err(ApiError::Status { status, .. }) => status.to_string(),
        Err(ApiError::Decode { .. }) => "decode".to_owned(),
        Err(ApiError::Setup(_)) => "setup".to_owned(),
    }
}

/// The operation label of a request described as the client does in its errors ("GET
/// reserved IP", "assign"...).
pub fn operation(what: &'static str) -> &'static str {
    match what {
        "GET reserved IP" => "get_reserved_ip",
        "GET action" => "get_action",
        "GET actions" => "list_actions",
        "metadata droplet id" => "metadata_droplet_id",
        other => other,
    }
}

/// Records one request.
pub fn record(operation: &'static str, target: String, outcome: String, took: Duration) {
    let key = CallKey {
        operation,
        target,
        outcome,
    };
    CALLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .observe(took);
}

/// Every row so far, in key order.
pub fn snapshot() -> Vec<(CallKey, CallStats)> {
    CALLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let mut s = CallStats::default();
        s.observe(Duration::from_millis(10));
        s.observe(Duration::from_millis(100));
        s.observe(Duration::from_millis(101));
        s.observe(Duration::from_secs(60));
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], 1, "10 ms <= 25 ms");
        assert_eq!(s.buckets[2], 1, "100 ms <= 100 ms");
        assert_eq!(s.buckets[3], 1, "101 ms <= 250 ms");
        assert_eq!(s.buckets.iter().sum::<u64>(), 3, "60 s is past every bound");
        assert!((s.sum_seconds - 60.211).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn outcomes_are_short_labels() {
        let ok: Result<(), ApiError> = Ok(());
        assert_eq!(outcome(&ok), "ok");
        let e: Result<(), ApiError> = Err(ApiError::Timeout {
            what: "assign",
            timeout: Duration::from_secs(5),
        });
        assert_eq!(outcome(&e), "timeout");
        let e: Result<(), ApiError> = Err(ApiError::Status {
            what: "assign",
            status: 429,
            id: "too_many_requests".to_owned(),
            message: String::new(),
            request_id: None,
            wait: None,
        });
        assert_eq!(outcome(&e), "429");
    }
}
