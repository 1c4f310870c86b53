//! Making 802.1Q tags visible to XDP: VLAN receive offload.
//!
//! A NIC with VLAN receive offload ("rx-vlan-offload", `NETIF_F_HW_VLAN_CTAG_RX`) strips the tag
//! of a received frame into the descriptor, and XDP then sees the frame *untagged*: a VLAN-7
//! advert of another router would look like one of this interface's own. The kernel stack keeps
//! the tag as metadata and drops such a frame (no VLAN interface for it), so the raw-socket path
//! is safe; the XDP program is not. [`TagsVisible::ensure`] therefore turns the offload off on an
//! interface XDP is attached to (the kernel then parses tags in software, as it does for any NIC
//! without the offload: VLAN interfaces keep working) and turns it back on when dropped.
//!
//! A veth is different: the tag travels from its peer as metadata whatever the receiving end's
//! setting (only the peer's *transmit* offload decides), so XDP on a veth cannot see the tags of
//! frames its peer forwards from a bridge. That is reported ([`Visibility::PeerDecides`]) for the
//! operator to act on (`ethtool -K PEER txvlan off`, or `--rx socket`). So are devices stacked on
//! others (bond, team, macvlan: [`Visibility::LowerDecides`]), whose lower NICs do the
//! stripping; a VLAN device needs nothing (its frames arrive untagged, other VLANs' never).
//!
//! The offload is turned back on when the agent exits normally; after a SIGKILL it stays off
//! (harmless: the kernel then parses tags in software).
//!
//! Uses the legacy `ETHTOOL_GFLAGS` / `ETHTOOL_SFLAGS` ioctls, whose `ETH_FLAG_RXVLAN` is exactly
//! this feature (no string-set lookup needed).

use std::{ffi::CString, io, os::fd::AsRawFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const ETHTOOL_GFLAGS: u32 = 0x0000_0025;
const ETHTOOL_SFLAGS: u32 = 0x0000_0026;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

/// What the interface does with VLAN tags, as XDP will see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Tags stay in the frame data (no receive offload, or it was turned off here).
    InFrame,
    /// The offload is on and cannot be turned off: XDP may see tagged frames untagged.
    Stripped(String),
    /// A veth: its peer's transmit offload decides (see the module docs).
    PeerDecides,
    /// A device stacked on others (bond, team, macvlan, ipvlan): the lower devices strip or
    /// keep tags; the driver's name.
    LowerDecides(String),
}

/// Keeps VLAN receive offload off on one interface while it lives (see the module docs).
#[derive(Debug)]
pub struct TagsVisible {
    iface: String,
    /// The offload was on and was turned off here: turned back on when dropped.
    restore: bool,
    /// What XDP sees.
    pub visibility: Visibility,
}

impl TagsVisible {
    /// Turns VLAN receive offload off on `iface` if it is on, and says what XDP will see.
    pub fn ensure(iface: &str) -> io::Result<Self> {
        let driver = Ethtool::open(iface)?.driver()?;
        let visibility = match driver.as_str() {
            "veth" => Visibility::PeerDecides,
            // A VLAN device's own frames arrive untagged, and other VLANs' never reach it.
            "802.1Q VLAN Support" => Visibility::InFrame,
            "bonding" | "team" | "macvlan" | "ipvlan" => Visibility::LowerDecides(driver),
            _ => return Self::turn_off(iface),
        };
        Ok(Self {
            iface: iface.to_owned(),
            restore: false,
            visibility,
        })
    }

    /// Turns VLAN receive offload off on `iface` if it is on, whatever the driver (on a veth
    /// this changes nothing XDP sees; [`TagsVisible::ensure`] leaves veths alone).
    pub fn turn_off(iface: &str) -> io::Result<Self> {
        let sock = Ethtool::open(iface)?;
        let flags = sock.get_flags()?;
        if flags & ETH_FLAG_RXVLAN == 0 {
            return Ok(Self {
                iface: iface.to_owned(),
                restore: false,
                visibility: Visibility::InFrame,
            });
        }
        match sock.set_flags(flags & !ETH_FLAG_RXVLAN) {
            Ok(()) if sock.get_flags()? & ETH_FLAG_RXVLAN == 0 => Ok(Self {
                iface: iface.to_owned(),
                restore: true,
                visibility: Visibility::InFrame,
            }),
            Ok(()) => Ok(Self {
                iface: iface.to_owned(),
                restore: false,
                visibility: Visibility::Stripped("the driver kept it on".to_owned()),
            }),
            Err(e) => Ok(Self {
                iface: iface.to_owned(),
                restore: false,
                visibility: Visibility::Stripped(e.to_string()),
            }),
        }
    }

    /// Whether the offload was turned off here (and will be turned back on).
    pub fn changed(&self) -> bool {
        self.restore
    }
}

impl Drop for TagsVisible {
    fn drop(&mut self) {
        if !self.restore {
            return;
        }
        let res = Ethtool::open(&self.iface)
            .and_then(|s| s.get_flags().and_then(|f| s.set_flags(f | ETH_FLAG_RXVLAN)));
        if let Err(e) = res {
            tracing::warn!(
                "{}: could not turn VLAN receive offload back on: {e}",
                self.iface
            );
        }
    }
}

/// An `AF_INET` datagram socket used for `SIOCETHTOOL` on one interface.
struct Ethtool {
    fd: std::os::fd::OwnedFd,
    name: [libc::c_char; libc::IFNAMSIZ],
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 160],
}

impl Ethtool {
    fn open(iface: &str) -> io::Result<Self> {
        let c = CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let bytes = c.as_bytes_with_nul();
        if bytes.len() > libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {iface:?} too long"),
            ));
        }
        let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
        for (d, s) in name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: plain socket(2); ownership is taken at once.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nobody else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        Ok(Self { fd, name })
    }

    /// `SIOCETHTOOL` with `data` as the request.
    fn ioctl<T>(&self, data: &mut T) -> io::Result<()> {
        // SAFETY: ifreq is plain old data; the name and the data pointer are set below.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_name = self.name;
        ifr.ifr_ifru.ifru_data = (data as *mut T).cast();
        // SAFETY: a valid socket, a valid ifreq whose data points at a live, writable `T` of
        // the layout the command expects.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn driver(&self) -> io::Result<String> {
        let mut info = DrvInfo {
            cmd: ETHTOOL_GDRVINFO,
            driver: [0; 32],
            rest: [0; 160],
        };
        self.ioctl(&mut info)?;
        let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
        Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
    }

    fn get_flags(&self) -> io::Result<u32> {
        let mut v = EthtoolValue {
            cmd: ETHTOOL_GFLAGS,
            data: 0,
        };
        self.ioctl(&mut v)?;
        Ok(v.data)
    }

    fn set_flags(&self, flags: u32) -> io::Result<()> {
        let mut v = EthtoolValue {
            cmd: ETHTOOL_SFLAGS,
            data: flags,
        };
        self.ioctl(&mut v)
    }
}
