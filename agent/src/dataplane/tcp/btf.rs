//! The hand-written BTF reader and [`SockOffsets`]: the offsets into `struct sock` and
//! `struct net` the TCP program reads at, found in `/sys/kernel/btf/vmlinux`.
//!
//! Hand-written on purpose. aya-obj 0.3 (aya 0.14's BTF reader) parses the kernel's BTF but its
//! public API only finds a type id by name and kind: `type_by_id`, `string_at`, the members of a
//! `Struct` and their offsets are `pub(crate)`, so member offsets cannot be read through it. The
//! other BTF reader crate, btf-rs, is LGPL-2.1, statically linked into an MIT/Apache-2.0 binary.
//! This reader is ~300 lines for the few kinds `struct sock` needs; malformed input is tested. It
//! reads the kernel's file in pieces (an index of the types, then the few types and names a
//! lookup needs), so the agent's peak memory does not hold the whole 5 MB blob.

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

/// Where a BTF blob is read from: a byte slice (the tests' blobs) or the kernel's file, read
/// in pieces at offsets (`pread`), so that the kernel's 5 MB are never in memory at once.
pub trait Blob {
    /// Fills `buf` with the bytes at `off`; false when the blob ends before (or cannot be read).
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool;
}

impl Blob for &[u8] {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(off) else {
            return false;
        };
        let Some(src) = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
}

impl Blob for fs::File {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, off).is_ok()
    }
}

/// A parsed BTF blob: just enough to find struct member offsets. Holds an index of where each
/// type starts (4 bytes a type: about 0.5 MB for a kernel's 130k types) and the structs' names'
/// offsets; types, members and names are read from the blob when a lookup needs them.
#[derive(Debug)]
pub struct Btf<B> {
    blob: B,
    /// Offset of the types section in the blob, and its length.
    types: (u64, u64),
    /// Offset of the strings section in the blob, and its length.
    strings: (u64, u64),
    /// Offset of each type in the types section; index = type id - 1.
    index: Vec<u32>,
    /// (name offset, id) of each struct with members, in id order.
    structs: Vec<(u32, u32)>,
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

/// Bytes read at a time while indexing the types section.
const CHUNK: usize = 64 * 1024;

/// A type's fixed part: (name_off, kind, vlen, kind_flag, size_or_type).
type TypeHeader = (u32, u32, usize, bool, u32);

fn type_header(h: &[u8]) -> Option<TypeHeader> {
    let name = u32_at(h, 0)?;
    let info = u32_at(h, 4)?;
    let st = u32_at(h, 8)?;
    Some((
        name,
        (info >> 24) & 0x1f,
        (info & 0xffff) as usize,
        info >> 31 == 1,
        st,
    ))
}

impl<'a> Btf<&'a [u8]> {
    /// Parses a little-endian BTF blob in memory (the format of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        Self::read(data)
    }
}

impl<B: Blob> Btf<B> {
    /// Indexes the BTF blob `blob` (little-endian, the format of `/sys/kernel/btf/vmlinux`).
    pub fn read(blob: B) -> Result<Self, String> {
        let mut head = [0u8; 24];
        let mut magic = [0u8; 2];
        if !blob.read_at(0, &mut magic) {
            return Err("too short".to_owned());
        }
        let magic = u16::from_le_bytes(magic);
        if magic != BTF_MAGIC {
            return Err(format!("bad magic {magic:#x}"));
        }
        if !blob.read_at(0, &mut head) {
            return Err("header truncated".to_owned());
        }
        let field = |i: usize| u32_at(&head, 4 + 4 * i).ok_or("header truncated");
        let hdr_len = u64::from(field(0)?);
        let (type_off, type_len, str_off, str_len) = (field(1)?, field(2)?, field(3)?, field(4)?);
        let section = |off: u32, len: u32| -> Result<(u64, u64), String> {
            let start = hdr_len + u64::from(off);
            let len = u64::from(len);
            // The section's last byte must be there (an empty section needs nothing).
            let mut last = [0u8; 1];
            if len > 0 && !blob.read_at(start + len - 1, &mut last) {
                return Err("section outside the blob".to_owned());
            }
            Ok((start, len))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut index = Vec::with_capacity(usize::try_from(types.1 / 40).unwrap_or(0));
        let mut structs = Vec::new();
        // The types section, read sequentially in chunks.
        let mut chunk = Vec::new();
        let mut chunk_at = 0u64;
        let mut pos = 0u64;
        while pos < types.1 {
            if pos + 12 > chunk_at + chunk.len() as u64 {
                chunk_at = pos;
                let n = usize::try_from((types.1 - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
                chunk.resize(n, 0);
                if !blob.read_at(types.0 + pos, &mut chunk) {
                    return Err("types unreadable".to_owned());
                }
            }
            let at = usize::try_from(pos - chunk_at).map_err(|_| "type offset overflows")?;
            let (name, kind, vlen, _, _) = chunk
                .get(at..)
                .and_then(type_header)
                .ok_or("type truncated")?;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as u64,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as u64,
                0..=19 => 0,
                k => return Err(format!("unknown type kind {k}")),
            };
            index.push(u32::try_from(pos).map_err(|_| "types section too large")?);
            let id = u32::try_from(index.len()).map_err(|_| "too many types")?;
            if kind == KIND_STRUCT && vlen > 0 {
                structs.push((name, id));
            }
            pos = pos + 12 + extra;
            if pos > types.1 {
                return Err("type truncated".to_owned());
            }
        }
        index.shrink_to_fit();
        structs.shrink_to_fit();
        Ok(Self {
            blob,
            types,
            strings,
            index,
            structs,
        })
    }

    /// `len` bytes at `pos` of the types section.
    fn type_bytes(&self, pos: u64, len: usize) -> Option<Vec<u8>> {
        if pos.checked_add(len as u64)? > self.types.1 {
            return None;
        }
        let mut b = vec![0u8; len];
        self.blob.read_at(self.types.0 + pos, &mut b).then_some(b)
    }

    fn type_u32(&self, pos: u64) -> Option<u32> {
        u32_at(&self.type_bytes(pos, 4)?, 0)
    }

    /// Whether the string at `off` is `name`.
    fn name_is(&self, off: u32, name: &str) -> bool {
        let len = name.len() + 1;
        if u64::from(off) + len as u64 > self.strings.1 {
            return false;
        }
        let mut b = vec![0u8; len];
        self.blob.read_at(self.strings.0 + u64::from(off), &mut b)
            && b.strip_suffix(&[0]) == Some(name.as_bytes())
    }

    /// The type's fixed part and the position of its trailing data in the types section.
    fn ty(&self, id: u32) -> Option<(TypeHeader, u64)> {
        let pos = u64::from(*self.index.get((id as usize).checked_sub(1)?)?);
        Some((type_header(&self.type_bytes(pos, 12)?)?, pos + 12))
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let ((_, kind, _, _, st), _) = self.ty(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = st
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn size_of(&self, id: u32, depth: u32) -> u32 {
        if depth > 8 {
            return 0;
        }
        let Some(id) = self.resolve(id) else { return 0 };
        match self.ty(id) {
            Some((
                (_, KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64, _, _, st),
                _,
            )) => st,
            Some(((_, KIND_PTR, ..), _)) => 8,
            Some(((_, KIND_ARRAY, ..), data)) => {
                let elem = self.type_u32(data).unwrap_or(0);
                let n = self.type_u32(data + 8).unwrap_or(0);
                self.size_of(elem, depth + 1).saturating_mul(n)
            }
            _ => 0,
        }
    }

    /// The id of the struct named `name` (the first one with members).
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs
            .iter()
            .find(|(n, _)| self.name_is(*n, name))
            .map(|(_, id)| *id)
    }

    /// Finds the member `name` of struct/union `id`, looking inside anonymous members; its
    /// offset in bytes from the start of `id`. Bitfields are refused.
    fn find(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        if depth > 8 {
            return None;
        }
        let id = self.resolve(id)?;
        let ((_, kind, vlen, kind_flag, _), data) = self.ty(id)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        let members = self.type_bytes(data, vlen.checked_mul(12)?)?;
        for m in members.chunks_exact(12) {
            let (mname, mtype, moff) = (u32_at(m, 0)?, u32_at(m, 4)?, u32_at(m, 8)?);
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
            if self.name_is(mname, name) {
                if bit_size != 0 || bit_off % 8 != 0 {
                    return None;
                }
                let ty = self.resolve(mtype)?;
                return Some(Member {
                    offset: bit_off / 8,
                    size: self.size_of(ty, 0),
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
    pub fn from_btf<B: Blob>(btf: &Btf<B>) -> Result<Self, String> {
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

    /// Reads the running kernel's BTF (in pieces: the file is 5 MB and more, and the agent's
    /// peak memory would be that much higher if it were read whole).
    pub fn from_kernel() -> Result<Self, String> {
        let file = fs::File::open("/sys/kernel/btf/vmlinux").map_err(|e| e.to_string())?;
        let btf = Btf::read(file)?;
        Self::from_btf(&btf)
    }
}
