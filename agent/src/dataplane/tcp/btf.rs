//! The hand-written BTF reader and [`SockOffsets`]: the offsets into `struct sock` and
//! `struct net` the TCP program reads at, found in `/sys/kernel/btf/vmlinux`.
//!
//! Hand-written on purpose. aya-obj 0.3 (aya 0.14's BTF reader) parses the kernel's BTF but its
//! public API only finds a type id by name and kind: `type_by_id`, `string_at`, the members of a
//! `Struct` and their offsets are `pub(crate)`, so member offsets cannot be read through it. The
//! other BTF reader crate, btf-rs, is LGPL-2.1, statically linked into an MIT/Apache-2.0 binary.
//! This reader is ~230 lines for the few kinds `struct sock` needs; malformed input is tested.

use std::fs;

use agent_common::tcp::netns_kind;

pub(super) const BTF_MAGIC: u16 = 0xeb9f;
pub(super) const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
pub(super) const KIND_STRUCT: u32 = 4;
pub(super) const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
pub(super) const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A parsed BTF blob: just enough to find struct member offsets.
#[derive(Debug)]
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset of each type in `types`; index = type id - 1.
    index: Vec<usize>,
}

/// A struct member found by [`Btf::member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset from the start of the outer struct, in bytes.
    pub offset: u32,
    /// Size of the member's type in bytes (0 when unknown).
    pub size: u32,
    /// Type id of the member (after typedefs and qualifiers).
    pub type_id: u32,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> Btf<'a> {
    /// Parses a little-endian BTF blob (the format of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let magic = data
            .get(0..2)
            .map(|m| u16::from_le_bytes([m[0], m[1]]))
            .ok_or("too short")?;
        if magic != BTF_MAGIC {
            return Err(format!("bad magic {magic:#x}"));
        }
        let field = |i: usize| u32_at(data, 4 + 4 * i).ok_or("header truncated");
        let hdr_len = field(0)? as usize;
        let (type_off, type_len, str_off, str_len) = (field(1)?, field(2)?, field(3)?, field(4)?);
        let section = |off: u32, len: u32| -> Result<&'a [u8], String> {
            let start = hdr_len
                .checked_add(off as usize)
                .ok_or("section offset overflows")?;
            let end = start
                .checked_add(len as usize)
                .ok_or("section length overflows")?;
            data.get(start..end)
                .ok_or_else(|| "section outside the blob".to_owned())
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut index = Vec::new();
        let mut pos = 0usize;
        while pos < types.len() {
            let info = u32_at(types, pos + 4).ok_or("type truncated")?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                0..=19 => 0,
                k => return Err(format!("unknown type kind {k}")),
            };
            index.push(pos);
            pos = pos.checked_add(12 + extra).ok_or("type size overflows")?;
            if pos > types.len() {
                return Err("type truncated".to_owned());
            }
        }
        Ok(Self {
            types,
            strings,
            index,
        })
    }

    fn name(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// (name_off, kind, vlen, kind_flag, size_or_type, offset of the trailing data).
    fn ty(&self, id: u32) -> Option<(u32, u32, usize, bool, u32, usize)> {
        let pos = *self.index.get((id as usize).checked_sub(1)?)?;
        let name = u32_at(self.types, pos)?;
        let info = u32_at(self.types, pos + 4)?;
        let st = u32_at(self.types, pos + 8)?;
        Some((
            name,
            (info >> 24) & 0x1f,
            (info & 0xffff) as usize,
            info >> 31 == 1,
            st,
            pos + 12,
        ))
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (_, kind, _, _, st, _) = self.ty(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = st
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> u32 {
        let Some(id) = self.resolve(id) else { return 0 };
        match self.ty(id) {
            Some((
                _,
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64,
                _,
                _,
                st,
                _,
            )) => st,
            Some((_, KIND_PTR, ..)) => 8,
            Some((_, KIND_ARRAY, _, _, _, data)) => {
                let elem = u32_at(self.types, data).unwrap_or(0);
                let n = u32_at(self.types, data + 8).unwrap_or(0);
                self.size_of(elem).saturating_mul(n)
            }
            _ => 0,
        }
    }

    /// The id of the struct named `name` (the first one with members).
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        (1..=self.index.len() as u32).find(|&id| {
            self.ty(id).is_some_and(|(n, kind, vlen, ..)| {
                kind == KIND_STRUCT && vlen > 0 && self.name(n) == Some(name)
            })
        })
    }

    /// Finds the member `name` of struct/union `id`, looking inside anonymous members; its
    /// offset in bytes from the start of `id`. Bitfields are refused.
    fn find(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        if depth > 8 {
            return None;
        }
        let id = self.resolve(id)?;
        let (_, kind, vlen, kind_flag, _, data) = self.ty(id)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        for i in 0..vlen {
            let m = data.checked_add(i.checked_mul(12)?)?;
            let (mname, mtype, moff) = (
                u32_at(self.types, m)?,
                u32_at(self.types, m + 4)?,
                u32_at(self.types, m + 8)?,
            );
            let (bit_off, bit_size) = if kind_flag {
                (moff & 0x00ff_ffff, moff >> 24)
            } else {
                (moff, 0)
            };
            if mname == 0 {
                if let Some(inner) = self.find(mtype, name, depth + 1) {
                    if bit_off % 8 != 0 {
                        return None;
                    }
                    return Some(Member {
                        offset: inner.offset.checked_add(bit_off / 8)?,
                        ..inner
                    });
                }
                continue;
            }
            if self.name(mname) == Some(name) {
                if bit_size != 0 || bit_off % 8 != 0 {
                    return None;
                }
                let ty = self.resolve(mtype)?;
                return Some(Member {
                    offset: bit_off / 8,
                    size: self.size_of(ty),
                    type_id: ty,
                });
            }
        }
        None
    }

    /// The member at `path` (e.g. `["__sk_common", "skc_net"]`) of struct `outer`, with its
    /// offset from the start of `outer`.
    pub fn member(&self, outer: &str, path: &[&str]) -> Result<Member, String> {
        let mut id = self
            .struct_id(outer)
            .ok_or_else(|| format!("no struct {outer}"))?;
        let mut off = 0u32;
        let mut last = None;
        for name in path {
            let m = self
                .find(id, name, 0)
                .ok_or_else(|| format!("no member {name} in {outer} (or a bitfield)"))?;
            off = off.checked_add(m.offset).ok_or("offset overflows")?;
            id = m.type_id;
            last = Some(m);
        }
        let m = last.ok_or("empty path")?;
        Ok(Member { offset: off, ..m })
    }
}

/// Offsets into `struct sock` and `struct net` the program reads at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `sock.__sk_common.skc_net` (a `possible_net_t`, whose first field is the pointer).
    pub net: u32,
    /// `net.net_cookie` or `net.ns.inum`.
    pub netns_id: u32,
    /// Which of the two.
    pub netns_kind: u32,
    /// `sock.__sk_common.skc_family`.
    pub family: u32,
    /// `sock.__sk_common.skc_num`.
    pub num: u32,
    /// `sock.__sk_common.skc_rcv_saddr`.
    pub rcv_saddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr`.
    pub v6_rcv_saddr: u32,
    /// `sock.sk_protocol`.
    pub protocol: u32,
    /// Its size (1 or 2).
    pub protocol_size: u32,
}

impl SockOffsets {
    /// The program's configuration: these offsets, enabled, for the network namespace
    /// `netns_id` (its kind in `netns_kind`).
    pub(crate) fn config(&self, netns_id: u64) -> agent_common::tcp::TcpConfig {
        agent_common::tcp::TcpConfig {
            enabled: 1,
            netns_kind: self.netns_kind,
            netns_id,
            off_net: self.net,
            off_netns_id: self.netns_id,
            off_family: self.family,
            off_num: self.num,
            off_rcv_saddr: self.rcv_saddr,
            off_v6_rcv_saddr: self.v6_rcv_saddr,
            off_protocol: self.protocol,
            protocol_size: self.protocol_size,
        }
    }

    /// Computes the offsets from a parsed BTF.
    pub fn from_btf(btf: &Btf<'_>) -> Result<Self, String> {
        let sc = |f: &str| btf.member("sock", &["__sk_common", f]);
        let net = sc("skc_net")?;
        let check = |m: Member, size: u32, what: &str| {
            if m.size == size {
                Ok(m.offset)
            } else {
                Err(format!("{what} has size {} (expected {size})", m.size))
            }
        };
        let (netns_id, netns_kind) = match btf.member("net", &["net_cookie"]) {
            Ok(m) if m.size == 8 => (m.offset, netns_kind::COOKIE),
            _ => (
                check(btf.member("net", &["ns", "inum"])?, 4, "net.ns.inum")?,
                netns_kind::INUM,
            ),
        };
        let proto = btf.member("sock", &["sk_protocol"])?;
        if proto.size != 1 && proto.size != 2 {
            return Err(format!("sock.sk_protocol has size {}", proto.size));
        }
        Ok(Self {
            net: check(net, 8, "sock_common.skc_net")?,
            netns_id,
            netns_kind,
            family: check(sc("skc_family")?, 2, "skc_family")?,
            num: check(sc("skc_num")?, 2, "skc_num")?,
            rcv_saddr: check(sc("skc_rcv_saddr")?, 4, "skc_rcv_saddr")?,
            v6_rcv_saddr: check(sc("skc_v6_rcv_saddr")?, 16, "skc_v6_rcv_saddr")?,
            protocol: proto.offset,
            protocol_size: proto.size,
        })
    }

    /// Reads and parses the running kernel's BTF.
    pub fn from_kernel() -> Result<Self, String> {
        let data = fs::read("/sys/kernel/btf/vmlinux").map_err(|e| e.to_string())?;
        let btf = Btf::parse(&data)?;
        Self::from_btf(&btf)
    }
}
