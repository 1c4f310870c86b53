//! The sans-IO VRRP protocol core.
//!
//! [`Instance`] is one virtual router: it takes [`Event`]s with the current [`Time`] and returns
//! [`Action`]s. It has no sockets, clocks, threads, tasks or randomness, so the RFC can be tested
//! sentence by sentence and many instances can run in the deterministic simulator
//! ([`crate::sim`]).
//!
//! - [`time`]: the virtual-time type, the timer formulas and the (single) rounding rule.
//! - [`params`]: what configuration gives an instance.
//! - [`instance`]: the state machine (RFC 3768 / 5798 / 9568 with keepalived's extensions); the
//!   choices made where readings differ are listed on [`Instance`].
//! - `types`: its public data ([`State`], [`Event`], [`Action`], [`Reason`], [`Transition`],
//!   [`Counters`], [`Status`]), re-exported here.
//!
//! The driver (runtime or simulator) owns sockets, the virtual address list and the timer; it
//! passes only adverts that passed the receive checks (vrrp.md), converted to
//! [`Event::AdvertReceived`].

pub mod instance;
pub mod params;
pub mod time;
mod types;

pub use instance::{Instance, ReconfigureError, PRIORITY_OWNER, PRIORITY_STOP};
pub use params::{
    Contribution, Family, InitialState, Params, ParamsError, Tracker, TrackerId, Version,
    TRACK_VALUE_MAX,
};
pub use time::{master_down_interval, skew_time, Time};
pub use types::{Action, Counters, Event, Reason, State, Status, Transition};
