//! Unit tests for `dataplane::tcp`: the BTF reader, the procfs parser, keys, and the program's
//! log paths.

#![allow(clippy::unwrap_used, reason = "tests")]
use super::btf::{BTF_MAGIC, KIND_INT, KIND_STRUCT, KIND_TYPEDEF, KIND_UNION};
use super::*;

const PROC_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100580A:0050 0300580A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 20 4 30 10 -1
";
const PROC_TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100580A:0050 0000000000000000FFFF00000300580A:D000 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";

#[test]
fn parses_proc_net_tcp() {
    let v = parse_proc_tcp(PROC_TCP);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].local, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!((v[0].port, v[0].state, v[0].rx_queue), (80, PROC_LISTEN, 3));
    assert_eq!(v[1].local, "10.88.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(v[1].state, PROC_ESTABLISHED);
    let v6 = parse_proc_tcp(PROC_TCP6);
    assert_eq!(v6.len(), 2);
    assert_eq!(v6[0].local, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(v6[1].local, "::ffff:10.88.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(v6[1].port, 80);
}

#[test]
fn malformed_proc_text_reads_as_empty_never_panics() {
    let bad = [
        "",
        "header only",
        "h\n0:",
        "h\n0: 00000000",
        "h\n0: 0000000:0050 x 0A 0:0",
        "h\n0: 00000000:zz50 x 0A 0:0",
        "h\n0: 00000000:0050 x ZZ 0:0",
        "h\n0: 00000000:0050 x 0A 00000000",
        "h\n0: 00000000:0050 x 0A 0:FFFFFFFFFFFF",
        "h\n0: 0000000000000000000000000000000:0050 x 0A 0:0",
        "h\n0: é0000000:0050 x 0A 0:0",
        "h\n0: 000000000000000000000000000000é:0050 x 0A 0:0",
        "h\n0: 00000000:10050 x 0A 0:0",
    ];
    for b in bad {
        assert!(parse_proc_tcp(b).is_empty(), "{b:?}");
    }
}

#[test]
fn address_filter_accepts_wildcards_and_mapped_addresses() {
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(serves("0.0.0.0".parse().unwrap(), Some(a)));
    assert!(serves("::".parse().unwrap(), Some(a)));
    assert!(serves("::ffff:10.0.0.1".parse().unwrap(), Some(a)));
    assert!(serves(a, Some(a)));
    assert!(!serves("10.0.0.2".parse().unwrap(), Some(a)));
    assert!(serves("10.0.0.2".parse().unwrap(), None));
    let k = key_of(80, a);
    assert_eq!(addr_of(&k), a);
    let k6 = key_of(80, "fd00::1".parse().unwrap());
    assert_eq!(addr_of(&k6), "fd00::1".parse::<IpAddr>().unwrap());
}

/// A tiny BTF: int (4 bytes), struct inner { int a; int b; }, struct outer { int x;
/// union { struct inner in; }; } with an anonymous union, and a typedef.
fn tiny_btf() -> Vec<u8> {
    let strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0t_inner\0".to_vec();
    let s = |name: &str| -> u32 {
        let needle = format!("\0{name}\0");
        strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap() as u32
            + 1
    };
    let mut t: Vec<u8> = Vec::new();
    let push = |t: &mut Vec<u8>, w: &[u32]| {
        for x in w {
            t.extend_from_slice(&x.to_le_bytes());
        }
    };
    // 1: int
    push(&mut t, &[s("int"), KIND_INT << 24, 4, 32]);
    // 2: struct inner { a @0, b @32 bits }
    push(&mut t, &[s("inner"), (KIND_STRUCT << 24) | 2, 8]);
    push(&mut t, &[s("a"), 1, 0, s("b"), 1, 32]);
    // 3: typedef t_inner = inner
    push(&mut t, &[s("t_inner"), KIND_TYPEDEF << 24, 2]);
    // 4: anonymous union { t_inner in; }
    push(&mut t, &[0, (KIND_UNION << 24) | 1, 8]);
    push(&mut t, &[s("in"), 3, 0]);
    // 5: struct outer { int x @0; union @64 bits }
    push(&mut t, &[s("outer"), (KIND_STRUCT << 24) | 2, 16]);
    push(&mut t, &[s("x"), 1, 0, 0, 4, 64]);
    let mut b = Vec::new();
    b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
    b.push(1);
    b.push(0);
    for w in [
        24u32,
        0,
        t.len() as u32,
        t.len() as u32,
        strings.len() as u32,
    ] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&t);
    b.extend_from_slice(&strings);
    b
}

#[test]
fn btf_member_offsets_through_anonymous_unions_and_typedefs() {
    let data = tiny_btf();
    let btf = Btf::parse(&data).unwrap();
    let m = btf.member("outer", &["in", "b"]).unwrap();
    assert_eq!((m.offset, m.size), (12, 4));
    assert_eq!(btf.member("outer", &["x"]).unwrap().offset, 0);
    assert_eq!(btf.member("outer", &["in"]).unwrap().size, 8);
    assert!(btf.member("outer", &["nope"]).is_err());
    assert!(btf.member("nope", &["x"]).is_err());
}

#[test]
fn malformed_btf_is_an_error_never_a_panic() {
    let good = tiny_btf();
    // Every truncation, and every single-byte corruption of the header and types.
    for n in 0..good.len() {
        let _ = Btf::parse(&good[..n]).map(|b| b.member("outer", &["in", "b"]));
    }
    for i in 0..good.len() {
        for v in [0u8, 0x7f, 0xff] {
            let mut d = good.clone();
            d[i] = v;
            if let Ok(b) = Btf::parse(&d) {
                let _ = b.member("outer", &["in", "b"]);
                let _ = SockOffsets::from_btf(&b);
            }
        }
    }
    assert!(Btf::parse(&[]).is_err());
    assert!(Btf::parse(&[0x9f, 0xeb]).is_err());
    // A typedef loop is refused, not followed forever.
    let mut d = good.clone();
    // type 3 (typedef) -> itself
    let types_start = 24;
    let t3 = types_start + 16 + 12 + 24;
    d[t3 + 8..t3 + 12].copy_from_slice(&3u32.to_le_bytes());
    let b = Btf::parse(&d).unwrap();
    assert!(b.member("outer", &["in", "b"]).is_err());
}

#[test]
fn kernel_btf_has_the_fields_the_program_reads() {
    // Every machine this runs on has BTF (kernel 6.x); the offsets must be plausible.
    let t = std::time::Instant::now();
    let Ok(off) = SockOffsets::from_kernel() else {
        eprintln!("no kernel BTF here; skipped");
        return;
    };
    eprintln!("kernel BTF read in pieces in {:?}", t.elapsed());
    assert!(off.net > 0 && off.num > 0 && off.family > 0, "{off:?}");
    eprintln!("{off:?}");
    // struct sock_common has begun with skc_addrpair (8), skc_hash (4), skc_dport, skc_num,
    // skc_family since 2.6.x.
    assert_eq!((off.num, off.family), (14, 16), "{off:?}");
    // Read in pieces from the file, or parsed whole from memory: the same answer.
    let whole = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let in_memory = SockOffsets::from_btf(&Btf::parse(&whole).unwrap()).unwrap();
    assert_eq!(off, in_memory);
}

/// Runs the loaded (not attached) TCP program once with the tracepoint's arguments
/// (`struct sock *`, old state, new state).
fn run_tcp(ebpf: &mut Ebpf, sk: u64, old: u32, new: u32) {
    use aya::programs::{RawTracePointRunOptions, TestRun};
    let prog: &mut RawTracePoint = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
    let mut opts = RawTracePointRunOptions::new();
    opts.args[0] = sk;
    opts.args[1] = u64::from(old);
    opts.args[2] = u64::from(new);
    prog.test_run(opts).unwrap();
}

#[test]
fn the_tcp_program_logs_its_error_paths_and_nothing_else() {
    use super::super::klog::testing::{can_load, runtime, Capture};
    use agent_common::tcp::state;
    if !can_load() {
        return;
    }
    runtime().block_on(async {
        let mut ebpf = load_object(super::super::load::LoadFor::Tcp).unwrap();
        let prog: &mut RawTracePoint = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
        prog.load().unwrap();
        let cap = Capture::default();
        let klog = KernelLog::start_with(&mut ebpf, "TCP test", Box::new(cap.clone()));
        assert!(klog.is_forwarding());
        let wait = Duration::from_millis(300);

        // Not a transition the program counts: nothing read, nothing logged, configured
        // or not.
        run_tcp(&mut ebpf, 0, state::SYN_SENT, state::ESTABLISHED + 1);
        run_tcp(&mut ebpf, 0, state::ESTABLISHED, state::ESTABLISHED);
        assert_eq!(cap.settle(0, wait).await, vec![]);

        // A listener appearing while the configuration is unset (offsets map left empty).
        run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
        let got = cap.settle(1, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, log::Level::Error);
        assert!(got[0].2.contains("without its configuration"), "{got:?}");

        // Configured with this kernel's offsets, a bad socket pointer: the read fails.
        let off = SockOffsets::from_kernel().unwrap();
        {
            let mut conf: Array<_, TcpConfig> =
                Array::try_from(ebpf.map_mut(CONFIG_MAP).unwrap()).unwrap();
            let c = off.config(1);
            conf.set(0, c, 0).unwrap();
        }
        run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
        let got = cap.settle(2, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].0, log::Level::Error);
        assert!(
            got[1].2.contains(&format!("failed at offset {}", off.num)),
            "{got:?}"
        );
        // Again and again: logged at the 2nd and 4th failure of a CPU, not at the 3rd.
        // (Each test run may land on another CPU: at most one record per run here.)
        run_tcp(&mut ebpf, 0, state::LISTEN, state::CLOSE);
        run_tcp(&mut ebpf, 0, state::ESTABLISHED, state::CLOSE);
        let got = cap.settle(5, wait).await;
        assert!(got.len() <= 4, "{got:?}");
        let read_failed = |ebpf: &Ebpf| -> u64 {
            let arr = PerCpuArray::<_, u64>::try_from(ebpf.map(STATS_MAP).unwrap()).unwrap();
            arr.get(&stats::READ_FAILED, 0).unwrap().iter().sum()
        };
        assert_eq!(read_failed(&ebpf), 3);
        for _ in 0..61 {
            run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
        }
        assert_eq!(read_failed(&ebpf), 64);
        let got = cap.settle(64, wait).await;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // 1, 2, 4, ..., 64 on one CPU: 7 records, plus the unconfigured one.
        assert!(got.len() <= 1 + 7 * cpus, "{} records: {got:?}", got.len());
        drop(klog);
    });
}
