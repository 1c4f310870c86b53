//! The kernel's process events connector (netlink `NETLINK_CONNECTOR`, group `CN_IDX_PROC`):
//! the socket (opened in the initial network namespace when the agent runs in another one, as
//! the connector only exists there) and the datagram parser. `vrrp_track_process`
//! (`daemon::track::process`) is its only user.

use std::{
    fs::File,
    os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd},
};

use netlink_packet_core::{NetlinkBuffer, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};
use netlink_sys::{protocols::NETLINK_CONNECTOR, Socket, SocketAddr};

// The netlink header's length, then linux/connector.h and linux/cn_proc.h.
const NLMSG_HDRLEN: usize = 16;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const CN_MSG_LEN: usize = 20;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_COMM: u32 = 0x0000_0200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// Header of `struct proc_event` before `event_data`: what, cpu, timestamp_ns.
const PROC_EVENT_HDR: usize = 16;
/// The kernel's `TASK_COMM_LEN - 1`.
pub const COMM_MAX: usize = 15;

/// A process event from the connector (only those the tracker uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// A task was created. Threads have `child_pid != child_tgid`.
    Fork {
        /// The parent process (thread group id).
        parent_tgid: i32,
        /// The new task's id.
        child_pid: i32,
        /// The new task's thread group id.
        child_tgid: i32,
    },
    /// A process executed a new program.
    Exec {
        /// Thread group id.
        tgid: i32,
    },
    /// A task changed its name.
    Comm {
        /// Task id.
        pid: i32,
        /// Thread group id.
        tgid: i32,
        /// New name (up to 15 bytes).
        comm: Vec<u8>,
    },
    /// A task exited. The process is gone when `pid == tgid`.
    Exit {
        /// Task id.
        pid: i32,
        /// Thread group id.
        tgid: i32,
    },
}

/// A connector datagram that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcParseError {
    /// A netlink header or length is inconsistent.
    #[error("malformed netlink message at byte {0}")]
    Netlink(usize),
    /// A connector message is shorter than its header or its stated length.
    #[error("malformed connector message at byte {0}")]
    Connector(usize),
    /// The kernel reported lost messages in-band (`NLMSG_OVERRUN`).
    #[error("the kernel dropped process events")]
    Overrun,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| v as i32)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Parses one `struct proc_event`; `None` for events the tracker does not use or that are too
/// short.
fn parse_proc_event(d: &[u8]) -> Option<ProcEvent> {
    let what = u32_at(d, 0)?;
    let e = PROC_EVENT_HDR;
    match what {
        PROC_EVENT_FORK => Some(ProcEvent::Fork {
            parent_tgid: i32_at(d, e + 4)?,
            child_pid: i32_at(d, e + 8)?,
            child_tgid: i32_at(d, e + 12)?,
        }),
        PROC_EVENT_EXEC => Some(ProcEvent::Exec {
            tgid: i32_at(d, e + 4)?,
        }),
        PROC_EVENT_COMM => {
            let raw = d.get(e + 8..e + 8 + 16)?;
            let comm = raw.split(|b| *b == 0).next().unwrap_or_default().to_vec();
            Some(ProcEvent::Comm {
                pid: i32_at(d, e)?,
                tgid: i32_at(d, e + 4)?,
                comm,
            })
        }
        PROC_EVENT_EXIT => Some(ProcEvent::Exit {
            pid: i32_at(d, e)?,
            tgid: i32_at(d, e + 4)?,
        }),
        _ => None,
    }
}

/// Parses a datagram from the connector socket into the events the tracker uses. Never panics.
pub fn parse_datagram(buf: &[u8]) -> Result<Vec<ProcEvent>, ProcParseError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + NLMSG_HDRLEN <= buf.len() {
        let nl = NetlinkBuffer::new_checked(&buf[at..]).map_err(|_| ProcParseError::Netlink(at))?;
        let len = nl.length() as usize;
        let payload = nl.payload();
        match nl.message_type() {
            NLMSG_OVERRUN => return Err(ProcParseError::Overrun),
            NLMSG_NOOP | NLMSG_ERROR => {}
            _ => {
                if payload.len() < CN_MSG_LEN {
                    return Err(ProcParseError::Connector(at));
                }
                let idx = u32_at(payload, 0).ok_or(ProcParseError::Connector(at))?;
                let val = u32_at(payload, 4).ok_or(ProcParseError::Connector(at))?;
                let dlen = u16_at(payload, 16).ok_or(ProcParseError::Connector(at))? as usize;
                let data = payload
                    .get(CN_MSG_LEN..CN_MSG_LEN + dlen)
                    .ok_or(ProcParseError::Connector(at))?;
                if idx == CN_IDX_PROC && val == CN_VAL_PROC {
                    if let Some(ev) = parse_proc_event(data) {
                        out.push(ev);
                    }
                }
            }
        }
        // NLMSG_ALIGN
        at += (len + 3) & !3;
    }
    Ok(out)
}

/// The subscription request (`PROC_CN_MCAST_LISTEN`) as sent to the kernel.
fn listen_request() -> Vec<u8> {
    // The netlink header: flags, sequence and port id 0 (the kernel fills in ours).
    let mut m = vec![0u8; NLMSG_HDRLEN];
    let mut nl = NetlinkBuffer::new(&mut m[..]);
    nl.set_length((NLMSG_HDRLEN + CN_MSG_LEN + 4) as u32);
    nl.set_message_type(NLMSG_DONE);
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&4u16.to_ne_bytes()); // len
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    m
}

pub(crate) fn last_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `e` with `what` in front of its message, keeping its kind.
fn with(what: &'static str) -> impl Fn(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens, binds and subscribes a connector socket in the calling thread's network namespace.
fn open_here() -> std::io::Result<OwnedFd> {
    let mut sock = Socket::new(NETLINK_CONNECTOR).map_err(with("socket(NETLINK_CONNECTOR)"))?;
    // A large buffer: every process event of the machine arrives here. SO_RCVBUFFORCE (root)
    // goes past rmem_max; netlink-sys only sets SO_RCVBUF.
    let size: libc::c_int = 8 << 20;
    // SAFETY: setsockopt(2) with a valid int option value and its size.
    let forced = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _ = sock.set_rx_buf_sz(size);
    }
    // A receive timeout lets the thread notice that the agent is stopping.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: setsockopt(2) with a valid timeval and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    sock.bind(&SocketAddr::new(0, CN_IDX_PROC))
        .map_err(with("bind(CN_IDX_PROC)"))?;
    sock.send_to(&listen_request(), &SocketAddr::new(0, 0), 0)
        .map_err(with("subscribing to process events"))?;
    // SAFETY: the descriptor comes out of `sock`, which no longer owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) })
}

/// Switches the calling thread to the network namespace of `path`.
fn setns_to(path: &str) -> std::io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns(2) on an open namespace file; it affects the calling thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(last_err(&format!("setns({path})")));
    }
    Ok(())
}

/// Opens the connector socket: in our namespace when the connector answers there (the initial
/// namespace), else in the initial namespace: the calling thread enters it, opens the socket and
/// returns to its own namespace. The initial namespace is found through `kthreadd` (pid 2, a
/// kernel thread, always in it and readable by root even where pid 1 is not), else pid 1.
/// Only call this from the tracker's own thread.
pub(crate) fn open_connector() -> std::io::Result<OwnedFd> {
    match open_here() {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let own = File::open("/proc/thread-self/ns/net")?;
            let mut last = e;
            for candidate in ["/proc/2/ns/net", "/proc/1/ns/net"] {
                if let Err(e) = setns_to(candidate) {
                    last = e;
                    continue;
                }
                let res = open_here();
                // SAFETY: setns(2) back to the namespace this thread was in.
                if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                    return Err(last_err("setns back to our namespace"));
                }
                match res {
                    Ok(fd) => return Ok(fd),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Err(e) => Err(e),
    }
}

/// `(st_dev, st_ino)` of a network namespace file.
pub(crate) fn netns_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    /// A connector datagram with one proc_event of `what` and `data` after the 16-byte header.
    fn datagram(what: u32, data: &[u8]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&0u32.to_ne_bytes());
        ev.extend_from_slice(&0u64.to_ne_bytes());
        ev.extend_from_slice(data);
        let mut m = Vec::new();
        let total = (NLMSG_HDRLEN + CN_MSG_LEN + ev.len()) as u32;
        m.extend_from_slice(&total.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&ev);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn ints(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn parses_fork_exec_comm_exit() {
        let mut buf = datagram(PROC_EVENT_FORK, &ints(&[10, 10, 11, 11]));
        buf.extend(datagram(PROC_EVENT_EXEC, &ints(&[11, 11])));
        let mut comm = ints(&[11, 11]);
        comm.extend_from_slice(b"nginx\0\0\0\0\0\0\0\0\0\0\0");
        buf.extend(datagram(PROC_EVENT_COMM, &comm));
        buf.extend(datagram(PROC_EVENT_EXIT, &ints(&[11, 11, 0, 9, 10, 10])));
        buf.extend(datagram(0x4, &ints(&[1, 1, 0, 0]))); // PROC_EVENT_UID: skipped
        assert_eq!(
            parse_datagram(&buf).unwrap(),
            vec![
                ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ProcEvent::Exec { tgid: 11 },
                ProcEvent::Comm {
                    pid: 11,
                    tgid: 11,
                    comm: b"nginx".to_vec()
                },
                ProcEvent::Exit { pid: 11, tgid: 11 },
            ]
        );
    }

    #[test]
    fn rejects_malformed_datagrams() {
        let good = datagram(PROC_EVENT_EXEC, &ints(&[11, 11]));
        let mut bad_len = good.clone();
        bad_len[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_datagram(&bad_len), Err(ProcParseError::Netlink(0)));
        let mut tiny = good.clone();
        tiny[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(parse_datagram(&tiny), Err(ProcParseError::Netlink(0)));
        let mut short_cn = good.clone();
        short_cn[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&500u16.to_ne_bytes());
        assert_eq!(parse_datagram(&short_cn), Err(ProcParseError::Connector(0)));
        // An event shorter than its fields is skipped, not misread.
        let short_ev = datagram(PROC_EVENT_FORK, &ints(&[1]));
        assert_eq!(parse_datagram(&short_ev), Ok(vec![]));
        assert_eq!(parse_datagram(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn parser_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_datagram(&buf);
        }

        #[test]
        fn parser_never_panics_on_corrupted_real_messages(
            what in prop_oneof![Just(PROC_EVENT_FORK), Just(PROC_EVENT_EXEC), Just(PROC_EVENT_COMM), Just(PROC_EVENT_EXIT)],
            cut in 0usize..100,
            flip in 0usize..100,
            byte in any::<u8>(),
        ) {
            let mut d = datagram(what, &[7u8; 40]);
            if let Some(b) = d.get_mut(flip) { *b = byte; }
            d.truncate(cut.min(d.len()));
            let _ = parse_datagram(&d);
        }
    }

    #[test]
    fn subscribe_message_has_keepalived_layout() {
        let m = listen_request();
        assert_eq!(m.len(), 40);
        assert_eq!(u32_at(&m, 0), Some(40));
        assert_eq!(u16_at(&m, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&m, 16), Some(CN_IDX_PROC));
        assert_eq!(u16_at(&m, 32), Some(4));
        assert_eq!(u32_at(&m, 36), Some(PROC_CN_MCAST_LISTEN));
    }
}
