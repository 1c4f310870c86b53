//! The I/O the event loop drives, as traits: sending adverts ([`AdvertTx`], a raw socket) and
//! changing addresses ([`AddressOps`], netlink). Production uses the real ones; the loop's own
//! tests plug in recorders. A leaf module: it knows nothing of the loop.

use std::net::IpAddr;

use crate::{
    config::VirtualAddress,
    net::{self, VrrpSocket},
};

/// Sends encoded adverts: the instance's raw VRRP socket (a recorder in tests).
pub(crate) trait AdvertTx {
    /// Sends `payload` from `src` to `dst` with TTL / hop limit `ttl`; must not block.
    fn send_from(
        &self,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
    ) -> Result<(), net::NetError>;
}

impl AdvertTx for VrrpSocket {
    fn send_from(
        &self,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
    ) -> Result<(), net::NetError> {
        VrrpSocket::send_from(self, payload, src, dst, ttl).map(|_| ())
    }
}

/// Adds and removes virtual addresses (netlink; a recorder in tests). Each call is one request
/// on a socket kept open, so it costs tens of microseconds on the loop.
pub(crate) trait AddressOps {
    /// Adds `v`; an address already present is `Err` with `EEXIST`.
    fn add(&mut self, v: &VirtualAddress) -> Result<(), net::NetError>;
    /// Removes `v`; an absent address is `Err` with `EADDRNOTAVAIL`.
    fn del(&mut self, v: &VirtualAddress) -> Result<(), net::NetError>;
}

/// [`AddressOps`] over one `NETLINK_ROUTE` socket, opened on first use and again after an
/// error that may have broken it (a timeout among them: see `addresses::REQUEST_TIMEOUT`).
#[derive(Default)]
pub(super) struct NetlinkAddresses {
    rtnl: Option<net::Rtnl>,
}

impl NetlinkAddresses {
    fn with<T>(
        &mut self,
        f: impl FnOnce(&net::Rtnl) -> Result<T, net::NetError>,
    ) -> Result<T, net::NetError> {
        let rtnl = match self.rtnl.take() {
            Some(r) => r,
            None => net::Rtnl::open_with_timeout(super::addresses::REQUEST_TIMEOUT)?,
        };
        let res = f(&rtnl);
        let keep = match &res {
            Ok(_) => true,
            // The kernel's answer to a well-formed request: the socket is fine.
            Err(e) => matches!(
                e.raw_os_error(),
                Some(libc::EEXIST | libc::EADDRNOTAVAIL | libc::ENODEV | libc::EINVAL)
            ),
        };
        if keep {
            self.rtnl = Some(rtnl);
        }
        res
    }
}

impl AddressOps for NetlinkAddresses {
    fn add(&mut self, v: &VirtualAddress) -> Result<(), net::NetError> {
        let ifx = net::ifindex(&v.dev)?;
        self.with(|r| r.add_address(ifx, v.address, v.prefix_len, v.label.as_deref()))
    }

    fn del(&mut self, v: &VirtualAddress) -> Result<(), net::NetError> {
        let ifx = net::ifindex(&v.dev)?;
        self.with(|r| r.del_address(ifx, v.address, v.prefix_len))
    }
}
