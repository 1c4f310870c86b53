//! Errors of the DigitalOcean client, and how the takeover reacts to each.
//!
//! No variant ever holds the token: requests are described by what they did ("GET reserved IP",
//! "assign"), never by their headers, and transport errors are reduced to their kind and cause.

use std::time::Duration;

/// One failed API or metadata request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No complete answer within the request's timeout.
    #[error("{what}: no answer within {}s", timeout.as_secs_f64())]
    Timeout {
        /// The request, e.g. "GET reserved IP".
        what: &'static str,
        /// The limit that expired.
        timeout: Duration,
    },
    /// Connecting, sending or reading failed.
    #[error("{what}: {detail}")]
    Transport {
        /// The request.
        what: &'static str,
        /// The cause (connection refused, reset, ...), without URL or headers.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{what}: HTTP {status} {id}: {message}{}", request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Status {
        /// The request.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The error body's `id` (`unauthorized`, `unprocessable_entity`...), or empty.
        id: String,
        /// The error body's `message`, or empty.
        message: String,
        /// `request_id` of the body or the `x-request-id` header.
        request_id: Option<String>,
        /// For 429: how long to wait (`retry-after`, else until `ratelimit-reset`).
        wait: Option<Duration>,
    },
    /// A success status with a body that does not parse as expected.
    #[error("{what}: unexpected answer: {detail}")]
    Decode {
        /// The request.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client could not be set up (TLS backend, bad token characters...).
    #[error("cannot set up the DigitalOcean client: {0}")]
    Setup(String),
}

/// How the takeover treats an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Timeouts, transport errors, 5xx, undecodable answers: exponential backoff with jitter.
    Transient,
    /// 429: wait this long (from `retry-after` or `ratelimit-reset`), then retry.
    RateLimited(Option<Duration>),
    /// 422 "... already has a pending event.": follow the pending action, then retry.
    PendingEvent,
    /// 422 "... already assigned ...": re-read the IP (it may be ours already).
    AlreadyAssigned,
    /// 404: the resource does not exist (an unknown reserved IP, or a fresh action).
    NotFound,
    /// 401 / 403: the token is refused. Stop; retry only on reload.
    Auth,
    /// Any other 4xx: a persistent problem (wrong region, unknown droplet...), retried slowly.
    Rejected,
}

impl ApiError {
    /// The takeover's reaction to this error.
    pub fn class(&self) -> Class {
        match self {
            ApiError::Timeout { .. } | ApiError::Transport { .. } | ApiError::Decode { .. } => {
                Class::Transient
            }
            ApiError::Setup(_) => Class::Auth,
            ApiError::Status {
                status,
                message,
                wait,
                ..
            } => match *status {
                401 | 403 => Class::Auth,
                404 => Class::NotFound,
                429 => Class::RateLimited(*wait),
                422 => {
                    let m = message.to_ascii_lowercase();
                    if m.contains("pending event") {
                        Class::PendingEvent
                    } else if m.contains("already") && m.contains("assigned") {
                        Class::AlreadyAssigned
                    } else {
                        Class::Rejected
                    }
                }
                s if s >= 500 => Class::Transient,
                _ => Class::Rejected,
            },
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: u16, message: &str) -> ApiError {
        ApiError::Status {
            what: "assign",
            status,
            id: "x".into(),
            message: message.into(),
            request_id: Some("r-1".into()),
            wait: None,
        }
    }

    #[test]
    fn classes() {
        assert_eq!(st(401, "Unable to authenticate you.").class(), Class::Auth);
        assert_eq!(st(403, "").class(), Class::Auth);
        assert_eq!(st(404, "").class(), Class::NotFound);
        assert_eq!(st(500, "").class(), Class::Transient);
        assert_eq!(st(503, "").class(), Class::Transient);
        assert_eq!(
            st(422, "The reserved IP already has a pending event.").class(),
            Class::PendingEvent
        );
        assert_eq!(
            st(422, "Droplet already has a pending event.").class(),
            Class::PendingEvent
        );
        assert_eq!(
            st(422, "The Droplet is already assigned a reserved IP.").class(),
            Class::AlreadyAssigned
        );
        assert_eq!(
            st(
                422,
                "The Droplet and the reserved IP must be in the same region."
            )
            .class(),
            Class::Rejected
        );
        assert_eq!(st(400, "").class(), Class::Rejected);
        assert_eq!(
            st(422, "x").to_string(),
            "assign: HTTP 422 x: x (request id r-1)"
        );
    }
}
