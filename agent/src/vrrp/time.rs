//! Virtual time and the VRRP timer formulas.
//!
//! # Rounding (the one place it happens)
//!
//! All protocol time is kept in whole **microseconds** (like keepalived, unlike FRR which truncates
//! to centiseconds and loses the v2 skew). Two conversions can lose precision, and both **round
//! down (floor)**:
//!
//! 1. [`micros`]: a [`Duration`] with sub-microsecond parts is truncated to whole microseconds.
//! 2. [`skew_time`]: `(256 - priority) * interval / 256` is computed in integer microseconds and
//!    floored. For v2 the "interval" in the formula is one second, so the skew is
//!    `(256 - p) * 3906.25` µs: exact when `256 - p` is a multiple of 4 (priority 100 gives
//!    609 375 µs), otherwise floored by at most 0.75 µs (keepalived does the same). For v3 with an
//!    interval that is a whole number of centiseconds this equals keepalived's
//!    `((256 - p) * centis * 625) / 16`.
//!
//! Nothing else rounds: the Master_Down_Interval is `3 * interval + skew` in exact integer
//! microseconds.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::Serialize;

use super::Version;

/// A point in (virtual or real) time: whole microseconds since an arbitrary epoch chosen by the
/// driver (the runtime uses a monotonic clock; the simulator starts at zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Time(pub u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);

    /// A time `us` microseconds after the epoch.
    pub const fn from_micros(us: u64) -> Time {
        Time(us)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + us` microseconds, saturating at the far future.
    pub const fn add_micros(self, us: u64) -> Time {
        Time(self.0.saturating_add(us))
    }

    /// Microseconds elapsed from `earlier` to `self` (0 if `earlier` is later).
    pub const fn micros_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    /// Saturating; sub-microsecond parts of the duration are floored (see [module docs](self)).
    fn add(self, rhs: Duration) -> Time {
        self.add_micros(micros(rhs))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    /// Saturating at zero.
    fn sub(self, rhs: Time) -> Duration {
        Duration::from_micros(self.micros_since(rhs))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// A duration in whole microseconds, floored; saturates at `u64::MAX`.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Skew_Time in microseconds.
///
/// - v2 (RFC 3768): `(256 - priority) / 256` seconds; `master_adver_interval_us` is not used.
/// - v3 (RFC 5798/9568): `((256 - priority) * Master_Adver_Interval) / 256`.
///
/// Floored to whole microseconds (see [module docs](self)). `priority` is the local (effective)
/// priority.
pub fn skew_time(version: Version, priority: u8, master_adver_interval_us: u64) -> u64 {
    let weight = 256 - u64::from(priority);
    match version {
        Version::V2 => weight * 1_000_000 / 256,
        Version::V3 => weight.saturating_mul(master_adver_interval_us) / 256,
    }
}

/// Master_Down_Interval in microseconds: `3 * Master_Adver_Interval + Skew_Time`.
///
/// For v2 the interval is the local Advert_Interval (the only one accepted on the wire).
pub fn master_down_interval(version: Version, priority: u8, master_adver_interval_us: u64) -> u64 {
    master_adver_interval_us
        .saturating_mul(3)
        .saturating_add(skew_time(version, priority, master_adver_interval_us))
}

/// keepalived's `VRRP_TIMER_SKEW_MIN`: the skew of a priority-255 router (`1/256` of the
/// interval for v3, `1/256` s for v2). Used for the first Master_Down_Timer of a non-owner with
/// initial state MASTER.
pub fn skew_time_min(version: Version, master_adver_interval_us: u64) -> u64 {
    skew_time(version, 255, master_adver_interval_us)
}
