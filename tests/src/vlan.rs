//! An 802.1Q access port for a lab host, without the kernel's 802.1Q module (this kernel has
//! none: no `eth0.7` devices, no VLAN-filtering bridge, no tc `vlan` action).
//!
//! [`VlanAccess::new`] takes the host's switch port out of the bridge and puts a relay between
//! them, in the switch namespace: a new veth pair whose one end joins the bridge (the trunk side)
//! and whose other end, like the host's old port, is read and written with `AF_PACKET` sockets by
//! two relay threads.
//!
//! - host -> LAN: every frame the host sends gets the tag (VID `vid`) inserted after the MAC
//!   addresses and is sent into the bridge, so every other host receives it tagged;
//! - LAN -> host: only frames of VLAN `vid` reach the host, untagged. The kernel moves the tag of
//!   a received frame out of the data (into the packet's metadata, reported to `AF_PACKET` with
//!   `PACKET_AUXDATA`); a tag still in the data is understood too. Untagged frames and frames of
//!   other VLANs are not delivered, as on a real access port.
//!
//! The host so sees plain untagged Ethernet, and the rest of the LAN sees its traffic only as
//! 802.1Q-tagged frames of VLAN `vid`: a keepalived pair on two such hosts runs its VRRP over
//! tagged frames on the same wire as the untagged hosts.
//!
//! The bridge's other ports transmit a tagged frame with the tag in the frame data only when
//! their transmit VLAN offload is off (veth keeps it in metadata otherwise, and an XDP program on
//! the receiving veth would then see the frame untagged, as on a NIC that strips tags); see
//! [`tags_in_frame_data`].
#![allow(clippy::unwrap_used, reason = "test support code")]

use std::{
    os::fd::{AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
};

use crate::{lab::Lab, must, Netns};

const ETH_P_8021Q: u16 = 0x8100;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

/// A host's switch port turned into an access port of one VLAN (see the module docs). The relay
/// stops and the port is put back into the bridge on drop.
#[derive(Debug)]
pub struct VlanAccess {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    switch: String,
    port: String,
    trunk: String,
    /// Frames relayed host -> LAN and LAN -> host.
    pub relayed: [Arc<AtomicU64>; 2],
}

impl VlanAccess {
    /// Puts the host behind switch port `port` (e.g. `p3`) on VLAN `vid`.
    pub fn new(lab: &Lab, port: &str, vid: u16) -> Self {
        assert!((1..4095).contains(&vid), "VID {vid}");
        let sw = lab.switch();
        let trunk = format!("{port}t");
        let relay = format!("{port}r");
        sw.ip(&["link", "set", port, "nomaster"]);
        must(sw.command("ip").args([
            "link", "add", &relay, "type", "veth", "peer", "name", &trunk,
        ]));
        sw.ip(&["link", "set", &trunk, "master", "br0"]);
        for dev in [&trunk, &relay] {
            sw.ip(&["link", "set", dev, "up"]);
        }
        let host_side = open_packet_socket(sw, port);
        let lan_side = open_packet_socket(sw, &relay);
        let stop = Arc::new(AtomicBool::new(false));
        let relayed = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let up = {
            let (from, to) = (dup(&host_side), dup(&lan_side));
            let (stop, n) = (Arc::clone(&stop), Arc::clone(&relayed[0]));
            std::thread::spawn(move || {
                pump(&from, &to, &stop, &n, |frame, _aux| {
                    let tci = vid.to_be_bytes();
                    let mut out = Vec::with_capacity(frame.len() + 4);
                    out.extend_from_slice(frame.get(..12)?);
                    out.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
                    out.extend_from_slice(&tci);
                    out.extend_from_slice(frame.get(12..)?);
                    Some(out)
                });
            })
        };
        let down = {
            let (from, to) = (lan_side, host_side);
            let (stop, n) = (Arc::clone(&stop), Arc::clone(&relayed[1]));
            std::thread::spawn(move || {
                pump(&from, &to, &stop, &n, |frame, aux| match aux {
                    // The tag was in the frame's metadata: the data is already untagged.
                    Some(tci) => (tci & 0x0fff == vid).then(|| frame.to_vec()),
                    None => {
                        let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
                        let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
                        if tpid != ETH_P_8021Q || tci & 0x0fff != vid {
                            return None;
                        }
                        let mut out = frame.get(..12)?.to_vec();
                        out.extend_from_slice(frame.get(16..)?);
                        Some(out)
                    }
                });
            })
        };
        Self {
            stop,
            threads: vec![up, down],
            switch: sw.name().to_owned(),
            port: port.to_owned(),
            trunk,
            relayed,
        }
    }
}

impl Drop for VlanAccess {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Deleting one end deletes the pair; the host's port goes back into the bridge.
        let ip = |args: &[&str]| {
            let _ = crate::sh(
                std::process::Command::new("ip")
                    .arg("-n")
                    .arg(&self.switch)
                    .args(args),
            );
        };
        ip(&["link", "del", &self.trunk]);
        ip(&["link", "set", &self.port, "master", "br0"]);
    }
}

/// Turns transmit VLAN offload off on switch ports, so tagged frames leave them with the tag in
/// the frame data, as on a wire: a receiving veth then hands XDP the tagged frame (with offload
/// on, veth passes the tag as metadata and XDP sees the frame untagged, like a NIC that strips
/// VLAN tags in hardware).
pub fn tags_in_frame_data(switch: &Netns, ports: &[&str]) {
    for p in ports {
        must(switch.command("ethtool").args(["-K", p, "txvlan", "off"]));
    }
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().unwrap()
}

/// An `AF_PACKET` socket bound to `ifname` in `ns`, receiving every protocol, with
/// `PACKET_AUXDATA` on and a 100 ms receive timeout (so relay threads notice a stop).
fn open_packet_socket(ns: &Netns, ifname: &str) -> OwnedFd {
    let ifname = ifname.to_owned();
    ns.run(move || {
        let fd = crate::packet_socket(&ifname);
        let one: libc::c_int = 1;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: valid option values of the stated sizes.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        fd
    })
}

/// Moves frames received on `from` (not those sent from it) to `to`, through `map` (which gets
/// the VLAN TCI the kernel moved to metadata, if any), until `stop`.
fn pump(
    from: &OwnedFd,
    to: &OwnedFd,
    stop: &AtomicBool,
    relayed: &AtomicU64,
    map: impl Fn(&[u8], Option<u16>) -> Option<Vec<u8>>,
) {
    let mut buf = vec![0u8; 65536];
    let mut cbuf = [0u64; 64];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: sockaddr_ll and msghdr are plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: every pointer in `msg` is valid for the stated length.
        let n = unsafe { libc::recvmsg(from.as_raw_fd(), &mut msg, 0) };
        let Ok(n) = usize::try_from(n) else {
            continue; // timeout (EAGAIN) or EINTR: look at `stop` again
        };
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let mut tci = None;
        // SAFETY: walking the control messages the kernel wrote into `cbuf`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                    let aux = std::ptr::read_unaligned(
                        libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>(),
                    );
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                        tci = Some(aux.tp_vlan_tci);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let Some(out) = map(&buf[..n], tci) else {
            continue;
        };
        // SAFETY: valid buffer of the stated length; the socket is bound, so no address.
        let sent = unsafe { libc::send(to.as_raw_fd(), out.as_ptr().cast(), out.len(), 0) };
        if sent >= 0 {
            relayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
