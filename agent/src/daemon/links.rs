//! Link state from netlink events, by interface name: the table and the watch loop shared by
//! `track_interface` (`track::links`) and the instances' own interfaces (`daemon::iface`).
//!
//! The loop subscribes to `RTMGRP_LINK` first, then reads the current state with an
//! `RTM_GETLINK` dump (so no change between the two is lost), and from then on only reacts to
//! `RTM_NEWLINK`/`RTM_DELLINK` events. When the kernel drops events (`ENOBUFS`, an overrun), the
//! state is read again with a dump. No polling.
//!
//! An interface is up when it is administratively up and running (`IFF_UP` and `IFF_RUNNING`,
//! keepalived's `IF_FLAGS_UP`); a missing interface (never there, deleted, or renamed away)
//! is down. Interfaces are matched by name, in the agent's network namespace.

use std::collections::HashMap;

use tokio::io::{unix::AsyncFd, Interest};
use tracing::{debug, error, warn};

use crate::net::{LinkEvent, LinkInfo, LinkMonitor, NetError, Rtnl};

/// The state of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Up and running.
    Up,
    /// Present but not usable; the text says why.
    Down(&'static str),
    /// Not in the namespace.
    Missing,
}

impl LinkState {
    /// The state of a link as the kernel describes it.
    pub(crate) fn of(link: &LinkInfo) -> Self {
        if !link.is_up() {
            LinkState::Down("administratively down")
        } else if !link.is_running() {
            LinkState::Down("no carrier")
        } else {
            LinkState::Up
        }
    }

    /// Whether it counts as up.
    pub(crate) fn is_up(&self) -> bool {
        *self == LinkState::Up
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down(why) => why,
            LinkState::Missing => "missing",
        }
    }
}

/// The tracked interfaces' states, fed by dumps and events.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    /// name -> (ifindex, state) of present links that are tracked.
    by_name: HashMap<String, (u32, LinkState)>,
}

impl LinkTable {
    /// The state of `name`.
    pub(crate) fn state(&self, name: &str) -> LinkState {
        self.by_name
            .get(name)
            .map_or(LinkState::Missing, |(_, s)| s.clone())
    }

    /// The ifindex of the link called `name`, if there is one.
    pub(crate) fn ifindex(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).map(|(idx, _)| *idx)
    }

    /// Replaces everything with a dump's content (only `tracked` names are kept).
    pub(crate) fn resync(&mut self, links: &[LinkInfo], tracked: &[&str]) {
        self.by_name = links
            .iter()
            .filter(|l| tracked.contains(&l.name.as_str()))
            .map(|l| (l.name.clone(), (l.ifindex, LinkState::of(l))))
            .collect();
    }

    /// Applies one event.
    pub(crate) fn apply(&mut self, ev: &LinkEvent, tracked: &[&str]) {
        // A tracked name that was on this ifindex and now is not (renamed or deleted).
        self.by_name.retain(|name, (idx, _)| {
            !(*idx == ev.link.ifindex && (ev.removed || *name != ev.link.name))
        });
        if !ev.removed && tracked.contains(&ev.link.name.as_str()) {
            self.by_name.insert(
                ev.link.name.clone(),
                (ev.link.ifindex, LinkState::of(&ev.link)),
            );
        }
    }
}

async fn dump() -> Result<Vec<LinkInfo>, String> {
    let r = tokio::task::spawn_blocking(|| {
        // A dump interrupted by a concurrent change (EINTR) is retried a few times.
        let mut last = None;
        for _ in 0..5 {
            match Rtnl::open().and_then(|r| r.links()) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(last.unwrap_or_default())
    })
    .await;
    r.map_err(|e| e.to_string())?
}

/// Watches the links called `names` on the current `LocalSet`: calls `on_change` with the
/// table after the first dump and after every batch of events; stops when it returns `false`.
/// `what` names the user in logs.
pub(crate) async fn watch(
    names: Vec<String>,
    what: &'static str,
    mut on_change: impl FnMut(&LinkTable) -> bool,
) {
    let tracked: Vec<&str> = names.iter().map(String::as_str).collect();
    let monitor = match LinkMonitor::open().and_then(|m| {
        // SAFETY: the monitor owns its fd, which stays open and the same until the AsyncFd
        // (which owns the monitor) is dropped.
        unsafe { AsyncFd::register_with_interest(m, Interest::READABLE) }.map_err(|e| {
            NetError::Sys {
                syscall: "epoll_ctl(AsyncFd)",
                target: "RTMGRP_LINK".to_owned(),
                source: e.into(),
            }
        })
    }) {
        Ok(m) => Some(m),
        Err(e) => {
            error!("{what}: cannot subscribe to link events: {e}; link changes will not be seen");
            None
        }
    };
    let mut table = LinkTable::default();
    let mut need_dump = true;
    loop {
        if need_dump {
            match dump().await {
                Ok(links) => table.resync(&links, &tracked),
                Err(e) => error!("{what}: cannot read the links: {e}"),
            }
            need_dump = false;
        }
        if !on_change(&table) {
            return;
        }
        let Some(fd) = monitor.as_ref() else {
            return;
        };
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        loop {
            match fd.get_ref().recv_events() {
                Ok(events) => {
                    for ev in &events {
                        table.apply(ev, &tracked);
                    }
                }
                Err(e) if e.is_would_block() => {
                    guard.clear_ready();
                    break;
                }
                Err(NetError::Overrun { .. }) => {
                    warn!("{what}: link events were lost (overrun); reading the links again");
                    need_dump = true;
                }
                Err(e) => {
                    // A malformed datagram: skip it, and read the state again to be safe.
                    debug!("{what}: {e}");
                    need_dump = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, flags: u32) -> LinkInfo {
        LinkInfo {
            ifindex,
            name: name.to_owned(),
            link_type: 1,
            flags,
            hw_addr: Vec::new(),
            mtu: Some(1500),
            operstate: None,
        }
    }

    const UP: u32 = (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_LOWER_UP) as u32;
    const ADMIN_UP: u32 = libc::IFF_UP as u32;

    #[test]
    fn up_means_admin_up_and_running() {
        assert_eq!(LinkState::of(&link(1, "a", UP)), LinkState::Up);
        assert_eq!(
            LinkState::of(&link(1, "a", ADMIN_UP)),
            LinkState::Down("no carrier")
        );
        assert_eq!(
            LinkState::of(&link(1, "a", 0)),
            LinkState::Down("administratively down")
        );
    }

    #[test]
    fn events_track_by_name_through_delete_and_rename() {
        let tracked = ["eth1"];
        let mut t = LinkTable::default();
        t.resync(&[link(5, "eth1", UP), link(6, "eth2", UP)], &tracked);
        assert_eq!(t.state("eth1"), LinkState::Up);
        assert_eq!(t.state("eth2"), LinkState::Missing, "not tracked");
        let ev = |l, removed| LinkEvent { link: l, removed };
        t.apply(&ev(link(5, "eth1", ADMIN_UP), false), &tracked);
        assert!(!t.state("eth1").is_up());
        t.apply(&ev(link(5, "renamed", UP), false), &tracked);
        assert_eq!(t.state("eth1"), LinkState::Missing, "renamed away");
        t.apply(&ev(link(9, "eth1", UP), false), &tracked);
        assert_eq!(t.state("eth1"), LinkState::Up, "a new link with the name");
        t.apply(&ev(link(9, "eth1", UP), true), &tracked);
        assert_eq!(t.state("eth1"), LinkState::Missing, "deleted");
    }
}
