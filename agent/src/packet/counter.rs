//! Receive counters: one per verdict reason, with keepalived's names where keepalived has one.

/// A receive counter. Every decode or check error maps to exactly one counter
/// ([`DecodeError::counter`](super::DecodeError::counter),
/// [`CheckError::counter`](super::CheckError::counter)); an accepted advert counts
/// [`Counter::AdvertRcvd`] and, when its priority is 0, also [`Counter::PriZeroRcvd`].
///
/// [`Counter::index`] is stable (it is an eBPF map key): new counters are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Counter {
    /// Adverts that passed every check (keepalived `advert_rcvd`).
    AdvertRcvd = 0,
    /// Truncated packets and length vs address count mismatches (keepalived `packet_len_err`).
    PacketLenErr = 1,
    /// v2 interval differs from ours, or v3 interval 0 (keepalived `advert_interval_err`).
    AdvertIntervalErr = 2,
    /// TTL / Hop Limit not 255 where required (keepalived `ip_ttl_err`).
    IpTtlErr = 3,
    /// VRRP type other than 1 (keepalived `invalid_type_rcvd`).
    InvalidTypeRcvd = 4,
    /// Address count 0 (keepalived `addr_list_err`).
    AddrListErr = 5,
    /// v2 auth type other than 0, 1, 2 (keepalived `invalid_authtype`).
    InvalidAuthtype = 6,
    /// v2 auth type differs from ours (keepalived `authtype_mismatch`).
    AuthtypeMismatch = 7,
    /// v2 PASS data differs from ours (keepalived `auth_failure`).
    AuthFailure = 8,
    /// Accepted adverts with priority 0 (keepalived `pri_zero_rcvd`).
    PriZeroRcvd = 9,
    /// VRRP checksum wrong in every accepted form (xvrrp).
    ChecksumErr = 10,
    /// Unknown version, v2 over IPv6, or a version other than the configured one (xvrrp).
    VersionErr = 11,
    /// VRID not configured on the interface for this family (xvrrp). No longer counted: such
    /// adverts are not ours, passed and counted for the interface as `not_ours`
    /// ([`frame_owner`](super::frame_owner)); kept for its stable index.
    VridErr = 12,
    /// Unicast mode: source is not a configured peer (xvrrp).
    UnknownPeer = 13,
    /// Bad IP header: version nibble, IHL, total length, fragment, header checksum, or source and
    /// destination of different families (xvrrp).
    IpHeaderErr = 14,
    /// Advert for a VRID we own (priority 255), discarded as RFC 3768 7.1 / RFC 9568 7.1
    /// require (xvrrp).
    OwnerDrop = 15,
    /// Not VRRP (other EtherType or protocol, IPv6 extension headers, QinQ): passed on untouched,
    /// not an error (xvrrp).
    NotVrrp = 16,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 17] = [
        Counter::AdvertRcvd,
        Counter::PacketLenErr,
        Counter::AdvertIntervalErr,
        Counter::IpTtlErr,
        Counter::InvalidTypeRcvd,
        Counter::AddrListErr,
        Counter::InvalidAuthtype,
        Counter::AuthtypeMismatch,
        Counter::AuthFailure,
        Counter::PriZeroRcvd,
        Counter::ChecksumErr,
        Counter::VersionErr,
        Counter::VridErr,
        Counter::UnknownPeer,
        Counter::IpHeaderErr,
        Counter::OwnerDrop,
        Counter::NotVrrp,
    ];

    /// Number of counters (the size of an eBPF array map indexed by [`Counter::index`]).
    pub const COUNT: u32 = 17;

    /// The stable index, for use as an eBPF map key.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The counter with this index.
    pub fn from_index(index: u32) -> Option<Counter> {
        Counter::ALL.get(usize::try_from(index).ok()?).copied()
    }

    /// The snake_case name (keepalived's where it has one).
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::AdvertRcvd => "advert_rcvd",
            Counter::PacketLenErr => "packet_len_err",
            Counter::AdvertIntervalErr => "advert_interval_err",
            Counter::IpTtlErr => "ip_ttl_err",
            Counter::InvalidTypeRcvd => "invalid_type_rcvd",
            Counter::AddrListErr => "addr_list_err",
            Counter::InvalidAuthtype => "invalid_authtype",
            Counter::AuthtypeMismatch => "authtype_mismatch",
            Counter::AuthFailure => "auth_failure",
            Counter::PriZeroRcvd => "pri_zero_rcvd",
            Counter::ChecksumErr => "checksum_err",
            Counter::VersionErr => "version_err",
            Counter::VridErr => "vrid_err",
            Counter::UnknownPeer => "unknown_peer",
            Counter::IpHeaderErr => "ip_header_err",
            Counter::OwnerDrop => "owner_drop",
            Counter::NotVrrp => "not_vrrp",
        }
    }

    /// The counter called `name` ([`Counter::as_str`]).
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl serde::Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Counter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Counter::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown counter {name:?}")))
    }
}

impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indices_are_dense_and_stable() {
        assert_eq!(Counter::ALL.len(), Counter::COUNT as usize);
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index() as usize, i);
            assert_eq!(Counter::from_index(c.index()), Some(*c));
        }
        assert_eq!(Counter::from_index(Counter::COUNT), None);
        // Pin a few: these are eBPF map keys.
        assert_eq!(Counter::AdvertRcvd.index(), 0);
        assert_eq!(Counter::ChecksumErr.index(), 10);
        assert_eq!(Counter::NotVrrp.index(), 16);
    }

    #[test]
    fn counter_names_are_unique_snake_case() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }
}
