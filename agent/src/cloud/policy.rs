//! Retry timing: exponential backoff with jitter, rate-limit waits, action polling, and the
//! bounds the tests check the request log against.
//!
//! Backoff ("equal jitter"): attempt `n` (0-based) waits a random time in `[d/2, d]` with
//! `d = min(BACKOFF_MAX, BACKOFF_BASE * 2^n)`. So retries start fast (a failover should not wait)
//! and settle at one attempt every 5-10 s while the API is down.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First backoff step (the first retry waits 0.25-0.5 s).
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Largest backoff step (retries then come every 5-10 s).
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// First wait after a 422 "pending event" when no pending action can be followed.
pub const PENDING_BASE: Duration = Duration::from_secs(1);
/// Largest wait after a 422 "pending event".
pub const PENDING_MAX: Duration = Duration::from_secs(5);
/// First wait after the API said the reserved IP itself does not exist (404).
pub const GONE_BASE: Duration = Duration::from_secs(1);
/// Largest wait between reads of a reserved IP the API says does not exist; the takeover also
/// never waits longer than `reconcile_interval`.
pub const GONE_MAX: Duration = Duration::from_secs(60);
/// First poll of an action, after the POST.
pub const POLL_FIRST: Duration = Duration::from_millis(150);
/// Largest gap between two polls of an action.
pub const POLL_MAX: Duration = Duration::from_secs(2);
/// How long an action is followed before the takeover starts over (re-reads the IP).
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Wait on a 429 that carries neither `retry-after` nor a usable `ratelimit-reset`.
pub const RATE_LIMIT_DEFAULT: Duration = Duration::from_secs(60);
/// Longest wait honoured from `retry-after` / `ratelimit-reset`.
pub const RATE_LIMIT_MAX: Duration = Duration::from_secs(3600);
/// Timeout of one API request (connect, send, answer, body).
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect timeout of one API request.
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one metadata request (the metadata service is link-local and fast).
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// Metadata retries: first step.
pub const METADATA_BASE: Duration = Duration::from_millis(500);
/// Metadata retries: largest step.
pub const METADATA_MAX: Duration = Duration::from_secs(30);
/// Smallest gap between two reconciles triggered by lower-priority adverts.
pub const KICK_MIN_GAP: Duration = Duration::from_secs(2);

/// A seeded PRNG (`fastrand`) for jitter; seeded from the clock in production.
#[derive(Debug, Clone)]
pub struct Jitter(fastrand::Rng);

impl Jitter {
    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// A generator seeded from the wall clock and the process id.
    pub fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// Next value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.f64()
    }
}

/// Exponential backoff with equal jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    jitter: Jitter,
}

impl Backoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration, jitter: Jitter) -> Self {
        Self {
            base,
            max,
            attempt: 0,
            jitter,
        }
    }

    /// The API policy ([`BACKOFF_BASE`], [`BACKOFF_MAX`]).
    pub fn api(jitter: Jitter) -> Self {
        Self::new(BACKOFF_BASE, BACKOFF_MAX, jitter)
    }

    /// The ceiling of step `n`: `min(max, base * 2^n)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base
            .checked_mul(1u32 << n.min(20))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The next wait, in `[ceiling/2, ceiling]`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d / 2 + d.mul_f64(0.5 * self.jitter.unit())
    }

    /// Back to the first step (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many attempts were made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// The most attempts the API backoff allows within `window` when every attempt fails at once:
/// the first attempt plus one per shortest possible wait (`ceiling/2`). Tests bound the double's
/// request log with it.
pub fn max_attempts_within(window: Duration) -> u32 {
    let b = Backoff::api(Jitter::seeded(1));
    let mut t = Duration::ZERO;
    let mut n = 1;
    loop {
        t += b.ceiling(n - 1) / 2;
        if t > window {
            return n;
        }
        n += 1;
    }
}

/// The next gap between polls of an action (1.5x, capped at [`POLL_MAX`]).
pub fn next_poll(prev: Duration) -> Duration {
    prev.mul_f64(1.5).min(POLL_MAX)
}

/// How long to wait after a 429, from its headers: `retry-after` seconds, else
/// `ratelimit-reset` (Unix seconds) minus `now_unix`; clamped to 1 s..[`RATE_LIMIT_MAX`].
pub fn rate_limit_wait(
    retry_after: Option<&str>,
    reset: Option<&str>,
    now_unix: u64,
) -> Option<Duration> {
    let clamp = |s: u64| Duration::from_secs(s.clamp(1, RATE_LIMIT_MAX.as_secs()));
    if let Some(s) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(clamp(s));
    }
    reset
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|r| clamp(r.saturating_sub(now_unix)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::api(Jitter::seeded(7));
        let ceilings: Vec<u64> = (0..7).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        for n in 0..50u32 {
            let c = b.ceiling(n);
            let d = b.next_delay();
            assert!(
                d >= c / 2 && d <= c,
                "step {n}: {d:?} outside [{:?}, {c:?}]",
                c / 2
            );
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= BACKOFF_BASE);
    }

    #[test]
    fn jitter_spreads() {
        let mut j = Jitter::seeded(42);
        let v: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        // Two nodes seeded differently do not retry in lockstep.
        let mut a = Backoff::api(Jitter::seeded(1));
        let mut b = Backoff::api(Jitter::seeded(2));
        assert!((0..5).any(|_| a.next_delay() != b.next_delay()));
    }

    #[test]
    fn attempt_bounds() {
        // Waits of at least 0.25, 0.5, 1, 2, 4, 5, 5... s.
        assert_eq!(max_attempts_within(Duration::from_millis(200)), 1);
        assert_eq!(max_attempts_within(Duration::from_millis(300)), 2);
        assert_eq!(max_attempts_within(Duration::from_secs(8)), 6);
        assert_eq!(max_attempts_within(Duration::from_secs(30)), 10);
    }

    #[test]
    fn rate_limit_headers() {
        assert_eq!(
            rate_limit_wait(Some("7"), Some("2000"), 1000),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(None, Some("1030"), 1000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rate_limit_wait(None, Some("900"), 1000),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit_wait(Some("999999"), None, 0),
            Some(RATE_LIMIT_MAX)
        );
        assert_eq!(rate_limit_wait(Some("soon"), None, 0), None);
        assert_eq!(rate_limit_wait(None, None, 0), None);
    }

    #[test]
    fn polls_grow_to_the_cap() {
        let mut p = POLL_FIRST;
        let mut seen = vec![p];
        for _ in 0..10 {
            p = next_poll(p);
            seen.push(p);
        }
        assert_eq!(seen[1], Duration::from_millis(225));
        assert_eq!(*seen.last().unwrap_or(&p), POLL_MAX);
    }
}
