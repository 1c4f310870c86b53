//! One typed model of the agent's state: what `xvrrp status` and `xvrrp counters` answer, what
//! the CLI prints and what the tests read.
//!
//! The daemon builds these values (a snapshot, `daemon::status`), the control socket sends them
//! as JSON (`control`), and the CLI and the end-to-end tests read them back with the same types,
//! so a field renamed here is renamed everywhere at once. Nothing in this module does I/O; it
//! depends only on the pure core (`vrrp`) and the codec's counter names (`packet::Counter`).
//!
//! The JSON schema is the serde form of these types (documented in the README); fields that may
//! be absent are `Option`s and default to `None` when read.

mod cloud;
mod counters;
mod health;
mod status;
mod tracker;

pub use self::{
    cloud::{CloudState, CloudStatus, Role},
    counters::{InterfaceRx, PeerCounts, PeerRow, RxCounters},
    status::{
        InstanceState, LoopTiming, NotifyRecord, NotifyState, ProbeReport, ReloadReport, RxKind,
        RxPath, Status, Transition, VipState, VlanTags,
    },
    tracker::{ListenerEvent, PortState, TrackerDetails, TrackerKind, TrackerState},
};
pub use crate::vrrp::{Counters as InstanceCounters, State};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn status_round_trips_through_json() {
        let s = Status {
            uptime_ms: 5,
            timers: LoopTiming::default(),
            rx: vec![RxPath {
                interface: "eth1".to_owned(),
                path: RxKind::XdpGeneric,
                fallback: Some("native refused".to_owned()),
                vlan_tags: Some(VlanTags::VethPeerDecides),
            }],
            announcements_dropped: 0,
            logs_suppressed: 0,
            instances: Vec::new(),
            metrics: Some("127.0.0.1:9650".to_owned()),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""path":"xdp-generic""#), "{text}");
        assert!(
            text.contains(r#""vlan_tags":"veth_peer_decides""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), s);
    }

    #[test]
    fn a_socket_path_has_no_optional_fields() {
        let p = RxPath {
            interface: "eth1".to_owned(),
            path: RxKind::Socket,
            fallback: None,
            vlan_tags: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"interface":"eth1","path":"socket"}"#
        );
    }
}
