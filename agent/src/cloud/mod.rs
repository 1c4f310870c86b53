//! Cloud address takeover: moving a DigitalOcean reserved IP to this droplet while an instance
//! is Master (the `digitalocean { }` block of a `vrrp_instance`).
//!
//! - [`calls`]: latency and outcome of every request, for the metrics.
//! - [`client`]: the HTTPS client of the reserved-IP API and of the metadata service (every
//!   request with a timeout, no proxies, the token only in a sensitive `Authorization` header).
//! - [`error`]: [`ApiError`] and how each error is treated ([`Class`]).
//! - [`policy`]: backoff with jitter, rate-limit waits, action polling; the constants.
//! - [`takeover`]: read, assign, follow, verify, reconcile; the status the daemon shows.
//!
//! The daemon side (`daemon::takeover`) runs one task per Master term and aborts it the moment
//! the instance leaves Master; no request starts after that.

pub mod calls;
pub mod client;
pub mod error;
pub mod policy;
pub mod takeover;

pub use client::{Api, DoClient, Metadata};
pub use error::{ApiError, Class};
pub use takeover::{CloudStatus, Fatal};
