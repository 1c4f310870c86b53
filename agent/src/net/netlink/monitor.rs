//! The `RTMGRP_LINK` subscription: [`LinkMonitor`] and the [`LinkEvent`]s parsed from its
//! datagrams (for `track_interface`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use netlink_packet_core::NetlinkPayload;
use netlink_sys::Socket;

use super::{
    bind, open_socket, recv_kernel, split_messages, LinkInfo, Reply, RECV_BUF, RTMGRP_LINK,
    RTM_DELLINK,
};
use crate::net::{NetError, Result};

/// A link change from the `RTMGRP_LINK` subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// The link's state after the change.
    pub link: LinkInfo,
    /// The link was deleted (`RTM_DELLINK`).
    pub removed: bool,
}

/// A non-blocking subscription to link changes (`RTMGRP_LINK`), for `track_interface`.
///
/// Register [`AsRawFd::as_raw_fd`] with the event loop; on readiness call
/// [`LinkMonitor::recv_events`] until it reports [`NetError::is_would_block`].
#[derive(Debug)]
pub struct LinkMonitor {
    sock: Socket,
}

impl LinkMonitor {
    /// Subscribes to `RTMGRP_LINK` in the calling thread's namespace (1 MiB receive buffer).
    pub fn open() -> Result<Self> {
        let sock = open_socket("RTMGRP_LINK")?;
        sock.set_non_blocking(true)
            .map_err(|source| NetError::Sys {
                syscall: "ioctl(FIONBIO)",
                target: "RTMGRP_LINK".to_owned(),
                source,
            })?;
        sock.set_rx_buf_sz::<libc::c_int>(1 << 20)
            .map_err(|source| NetError::Sys {
                syscall: "setsockopt(SO_RCVBUF)",
                target: "RTMGRP_LINK".to_owned(),
                source,
            })?;
        let sock = bind(sock, RTMGRP_LINK, "RTMGRP_LINK")?;
        Ok(Self { sock })
    }

    /// Reads one datagram of events without blocking. Nothing queued is a `Sys` error with
    /// [`NetError::is_would_block`]; lost events are [`NetError::Overrun`] (re-read the state
    /// with [`Rtnl::links`](super::Rtnl::links)).
    pub fn recv_events(&self) -> Result<Vec<LinkEvent>> {
        let mut buf = vec![0u8; RECV_BUF];
        let n = match recv_kernel(&self.sock, &mut buf, libc::MSG_DONTWAIT) {
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Err(NetError::Overrun {
                    group: "RTMGRP_LINK",
                })
            }
            r => r.map_err(|source| NetError::Sys {
                syscall: "recv",
                target: "RTMGRP_LINK".to_owned(),
                source,
            })?,
        };
        parse_link_events(buf.get(..n).unwrap_or_default())
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Parses a datagram from the link subscription into events (`RTM_NEWLINK` / `RTM_DELLINK`);
/// other message types are skipped. Never panics: malformed input is [`NetError::Malformed`].
pub fn parse_link_events(buf: &[u8]) -> Result<Vec<LinkEvent>> {
    let mut out = Vec::new();
    for msg in split_messages(buf)? {
        if let NetlinkPayload::InnerMessage(Reply::Link(link)) = msg.payload {
            out.push(LinkEvent {
                link,
                removed: msg.header.message_type == RTM_DELLINK,
            });
        }
    }
    Ok(out)
}
