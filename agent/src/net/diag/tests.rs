//! Unit tests for `net::diag`.

#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&2u16.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    while m.len() % 4 != 0 {
        m.push(0);
    }
    m
}

/// An `inet_diag_msg` with one attribute (`INET_DIAG_SHUTDOWN`, as the kernel adds).
fn diag_msg(family: u8, state: u8, addr: IpAddr, port: u16, rq: u32, wq: u32) -> Vec<u8> {
    let mut m = vec![0u8; MSG_LEN];
    m[0] = family;
    m[1] = state;
    m[4..6].copy_from_slice(&port.to_be_bytes());
    m[6..8].copy_from_slice(&4242u16.to_be_bytes());
    match addr {
        IpAddr::V4(a) => m[8..12].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => m[8..24].copy_from_slice(&a.octets()),
    }
    m[24..28].copy_from_slice(&[192, 0, 2, 9]);
    m[56..60].copy_from_slice(&rq.to_ne_bytes());
    m[60..64].copy_from_slice(&wq.to_ne_bytes());
    m[68..72].copy_from_slice(&12345u32.to_ne_bytes());
    m.extend_from_slice(&5u16.to_ne_bytes());
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

fn reply() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(nlmsg(
        SOCK_DIAG_BY_FAMILY,
        7,
        &diag_msg(2, TCP_LISTEN, "0.0.0.0".parse().unwrap(), 80, 3, 511),
    ));
    b.extend(nlmsg(
        SOCK_DIAG_BY_FAMILY,
        7,
        &diag_msg(10, TCP_LISTEN, "fd00::1".parse().unwrap(), 443, 0, 128),
    ));
    // A stale reply to an earlier request: skipped.
    b.extend(nlmsg(
        SOCK_DIAG_BY_FAMILY,
        6,
        &diag_msg(2, TCP_LISTEN, "10.0.0.1".parse().unwrap(), 80, 9, 9),
    ));
    b.extend(nlmsg(NLMSG_DONE, 7, &0i32.to_ne_bytes()));
    b
}

#[test]
fn parses_a_dump() {
    let mut out = Vec::new();
    assert!(parse_reply(&reply(), 7, &mut out).unwrap());
    assert_eq!(
        out,
        vec![
            DiagSocket {
                family: Family::V4,
                state: TCP_LISTEN,
                local: "0.0.0.0".parse().unwrap(),
                port: 80,
                rqueue: 3,
                wqueue: 511,
            },
            DiagSocket {
                family: Family::V6,
                state: TCP_LISTEN,
                local: "fd00::1".parse().unwrap(),
                port: 443,
                rqueue: 0,
                wqueue: 128,
            },
        ]
    );
    // A part without NLMSG_DONE: not complete yet.
    let mut out = Vec::new();
    let first = nlmsg(
        SOCK_DIAG_BY_FAMILY,
        7,
        &diag_msg(2, TCP_ESTABLISHED, "127.0.0.1".parse().unwrap(), 80, 0, 0),
    );
    assert!(!parse_reply(&first, 7, &mut out).unwrap());
    assert_eq!(out.len(), 1);
    assert!(!parse_reply(&[], 7, &mut out).unwrap());
}

#[test]
fn kernel_errors_are_errors() {
    let mut out = Vec::new();
    let e = parse_reply(
        &nlmsg(NLMSG_ERROR, 7, &(-libc::EINVAL).to_ne_bytes()),
        7,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    let e = parse_reply(
        &nlmsg(NLMSG_DONE, 7, &(-libc::ENOBUFS).to_ne_bytes()),
        7,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
    // i32::MIN cannot be negated: still an error, not an overflow.
    assert!(parse_reply(&nlmsg(NLMSG_ERROR, 7, &i32::MIN.to_ne_bytes()), 7, &mut out).is_err());
    assert!(parse_reply(&nlmsg(NLMSG_ERROR, 7, &[0, 0]), 7, &mut out).is_err());
    // An error for another request is not ours.
    assert!(!parse_reply(&nlmsg(NLMSG_ERROR, 3, &(-1i32).to_ne_bytes()), 7, &mut out).unwrap());
}

#[test]
fn truncated_and_malformed_replies_are_errors_never_panics() {
    let good = reply();
    for n in 0..good.len() {
        let mut out = Vec::new();
        // Every prefix either parses (cut at a message boundary) or is an error.
        if let Ok(done) = parse_reply(&good[..n], 7, &mut out) {
            assert!(!done, "{n}");
        }
    }
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut d = good.clone();
            d[i] = v;
            let _ = parse_reply(&d, 7, &mut Vec::new());
        }
    }
    let mut out = Vec::new();
    // A short inet_diag_msg, an unknown family, an unknown message type, a length below the
    // header, a length beyond the datagram.
    let short = nlmsg(SOCK_DIAG_BY_FAMILY, 7, &[2u8; 40]);
    assert!(parse_reply(&short, 7, &mut out).is_err());
    let mut fam = diag_msg(2, TCP_LISTEN, "0.0.0.0".parse().unwrap(), 80, 0, 0);
    fam[0] = 1;
    assert!(parse_reply(&nlmsg(SOCK_DIAG_BY_FAMILY, 7, &fam), 7, &mut out).is_err());
    assert!(parse_reply(&nlmsg(99, 7, &[]), 7, &mut out).is_err());
    let mut low = nlmsg(NLMSG_DONE, 7, &[0; 4]);
    low[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert!(parse_reply(&low, 7, &mut out).is_err());
    let mut long = nlmsg(NLMSG_DONE, 7, &[0; 4]);
    long[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert!(parse_reply(&long, 7, &mut out).is_err());
    assert!(parse_reply(&[1, 2, 3], 7, &mut out).is_err());
    assert!(out.is_empty());
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse_reply(&bytes, 7, &mut Vec::new());
    }
}

#[test]
fn request_layout() {
    let f = port_filter(&[80]).unwrap();
    let r = request(10, 1 << TCP_LISTEN, Some(&f), 9);
    assert_eq!(read_u32(&r, 0), Some(r.len() as u32));
    assert_eq!(read_u16(&r, 4), Some(SOCK_DIAG_BY_FAMILY));
    assert_eq!(read_u16(&r, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
    assert_eq!(read_u32(&r, 8), Some(9));
    assert_eq!(&r[16..20], &[10, 6, 0, 0]);
    assert_eq!(read_u32(&r, 20), Some(1 << 10));
    assert!(r[24..72].iter().all(|b| *b == 0));
    assert_eq!(read_u16(&r, 72), Some(4 + f.len() as u16));
    assert_eq!(read_u16(&r, 74), Some(INET_DIAG_REQ_BYTECODE));
    assert_eq!(&r[76..], &f[..]);
    assert_eq!(request(2, 1, None, 1).len(), NLMSG_HDRLEN + REQ_LEN);
}

/// The kernel's `inet_diag_bc_audit`, for the ops [`port_filter`] emits.
fn audit(bc: &[u8]) -> bool {
    let op = |at: usize| -> Option<(u8, i64, i64)> {
        Some((
            *bc.get(at)?,
            i64::from(*bc.get(at + 1)?),
            i64::from(read_u16(bc, at + 2)?),
        ))
    };
    let valid_cc = |cc: i64| -> bool {
        let (mut at, mut len) = (0usize, bc.len() as i64);
        while len >= 0 {
            if cc > len {
                return false;
            }
            if cc == len {
                return true;
            }
            let Some((_, yes, _)) = op(at) else {
                return false;
            };
            if yes < 4 || yes & 3 != 0 {
                return false;
            }
            len -= yes;
            at += yes as usize;
        }
        false
    };
    if bc.len() < 4 {
        return false;
    }
    let (mut at, mut len) = (0usize, bc.len() as i64);
    while len > 0 {
        let Some((code, yes, no)) = op(at) else {
            return false;
        };
        let mut min_len = 4;
        match code {
            INET_DIAG_BC_S_GE | INET_DIAG_BC_S_LE => {
                min_len += 4;
                if len < min_len {
                    return false;
                }
            }
            INET_DIAG_BC_JMP | 0 => {}
            _ => return false,
        }
        if code != 0 {
            if no < min_len || no > len + 4 || no & 3 != 0 {
                return false;
            }
            if no < len && !valid_cc(len - no) {
                return false;
            }
        }
        if yes < min_len || yes > len + 4 || yes & 3 != 0 {
            return false;
        }
        at += yes as usize;
        len -= yes;
    }
    len == 0
}

/// The kernel's `inet_diag_bc_run` for a socket with local port `sport`.
fn run(bc: &[u8], sport: u16) -> bool {
    let (mut at, mut len) = (0usize, bc.len() as i64);
    while len > 0 {
        let code = bc[at];
        let port = || read_u16(bc, at + 6).unwrap();
        let yes = match code {
            0 => true,
            INET_DIAG_BC_JMP => false,
            INET_DIAG_BC_S_GE => sport >= port(),
            INET_DIAG_BC_S_LE => sport <= port(),
            _ => panic!("op {code}"),
        };
        let step = if yes {
            i64::from(bc[at + 1])
        } else {
            i64::from(read_u16(bc, at + 2).unwrap())
        };
        len -= step;
        at = at.wrapping_add(step as usize);
    }
    len == 0
}

#[test]
fn port_filter_passes_the_kernel_audit_and_matches_exactly_the_ports() {
    assert_eq!(port_filter(&[]), None);
    for ports in [
        vec![80],
        vec![80, 443],
        vec![443, 80, 80, 8080],
        vec![80, 81, 82, 443, 444, 8080],
        vec![0, 1, 65535],
        vec![65534, 65535],
        (1000..1256).collect::<Vec<u16>>(),
        (1..=256u16).map(|i| i * 200).collect(),
    ] {
        let bc = port_filter(&ports).unwrap();
        assert!(audit(&bc), "{ports:?}: refused by the audit");
        // Every port for short filters; the ports, their neighbours and a sample for long.
        let probe: Vec<u16> = if ports.len() < 10 {
            (0..=u16::MAX).collect()
        } else {
            ports
                .iter()
                .flat_map(|p| [p.saturating_sub(1), *p, p.saturating_add(1)])
                .chain((0..=u16::MAX).step_by(97))
                .chain([0, u16::MAX])
                .collect()
        };
        for p in probe {
            assert_eq!(run(&bc, p), ports.contains(&p), "{ports:?}: port {p}");
        }
    }
    // Too many ranges for a u16 attribute length: no filter (ports are filtered here).
    let sparse: Vec<u16> = (0..4000u16).map(|i| i * 2).collect();
    assert_eq!(port_filter(&sparse), None);
}
