//! Unit tests for `daemon::track::process`.

#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

fn spec(process: &str, params: Option<&str>, pm: ParamMatch) -> TrackProcess {
    TrackProcess {
        name: "p".to_owned(),
        process: process.to_owned(),
        params: params.map(str::to_owned),
        param_match: pm,
        full_command: false,
        weight: 0,
        reverse: false,
        quorum: 1,
        quorum_max: None,
        terminate_delay: Duration::ZERO,
        fork_delay: Duration::ZERO,
    }
}

#[test]
fn stat_parsing_handles_odd_names() {
    assert_eq!(
        parse_stat(b"123 (nginx) S 1 2 3"),
        Some((b"nginx".to_vec(), b'S'))
    );
    assert_eq!(
        parse_stat(b"5 (a (b) c) Z 1"),
        Some((b"a (b) c".to_vec(), b'Z'))
    );
    assert_eq!(parse_stat(b"5 (x"), None);
    assert_eq!(parse_stat(b"5 (x)"), None);
    assert_eq!(parse_stat(b""), None);
}

#[test]
fn names_match_the_comm_truncated_to_15_bytes() {
    let m = Matcher::new(&spec("nginx", None, ParamMatch::Exact));
    assert!(!m.cmdline);
    assert!(m.matches(b"nginx", None));
    assert!(!m.matches(b"nginx2", None));
    let long = Matcher::new(&spec("a-very-long-daemon-name", None, ParamMatch::Exact));
    assert!(long.matches(b"a-very-long-dae", None));
}

#[test]
fn params_match_like_keepalived_check_params() {
    let cmd = b"/usr/sbin/nginx\0-c\0/etc/nginx/nginx.conf\0";
    let exact = Matcher::new(&spec(
        "/usr/sbin/nginx",
        Some("-c /etc/nginx/nginx.conf"),
        ParamMatch::Exact,
    ));
    assert!(exact.cmdline);
    assert!(exact.matches(b"nginx", Some(cmd)));
    assert!(!exact.matches(b"nginx", Some(b"/usr/sbin/nginx\0-c\0")));
    assert!(!exact.matches(
        b"nginx",
        Some(b"/usr/sbin/nginx\0-c\0/etc/nginx/nginx.conf\0-g\0x\0")
    ));
    let partial = Matcher::new(&spec("/usr/sbin/nginx", Some("-c"), ParamMatch::Partial));
    assert!(partial.matches(b"", Some(cmd)));
    let partial_prefix = Matcher::new(&spec(
        "/usr/sbin/nginx",
        Some("-c /etc"),
        ParamMatch::Partial,
    ));
    assert!(
        !partial_prefix.matches(b"", Some(cmd)),
        "partial needs whole parameters"
    );
    let initial = Matcher::new(&spec(
        "/usr/sbin/nginx",
        Some("-c /etc"),
        ParamMatch::Initial,
    ));
    assert!(
        initial.matches(b"", Some(cmd)),
        "initial: the last may be a prefix"
    );
    assert!(!initial.matches(b"", Some(b"/usr/sbin/nginx\0-d\0/etc\0")));
    let path_only = Matcher::new(&spec("/usr/sbin/nginx", None, ParamMatch::Exact));
    assert!(path_only.cmdline);
    assert!(
        path_only.matches(b"", Some(cmd)),
        "no parameters: any arguments"
    );
    assert!(!path_only.matches(b"", Some(b"")));
    assert!(!path_only.matches(b"", None));
}

#[test]
fn quorum_and_delays_follow_keepalived() {
    let mut s = spec("nginx", None, ParamMatch::Exact);
    s.quorum = 2;
    s.quorum_max = Some(3);
    s.fork_delay = Duration::from_secs(1);
    s.terminate_delay = Duration::from_secs(2);
    let mut q = Quorum::new(&s);
    let t0 = Instant::now();
    assert_eq!(q.update(1, t0), Some(false), "first count reported at once");
    assert_eq!(q.update(2, t0), None, "gain waits fork_delay");
    assert_eq!(q.deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(q.due(t0 + Duration::from_millis(500)), None);
    assert_eq!(q.due(t0 + Duration::from_secs(1)), Some(true));
    assert_eq!(
        q.update(4, t0),
        None,
        "above quorum_max: loss waits terminate_delay"
    );
    assert_eq!(q.update(3, t0), None, "back in range cancels");
    assert_eq!(q.deadline(), None);
    let mut nodelay = Quorum::new(&spec("nginx", None, ParamMatch::Exact));
    assert_eq!(nodelay.update(1, t0), Some(true));
    assert_eq!(nodelay.update(0, t0), Some(false));
    assert_eq!(nodelay.update(0, t0), None);
}

#[test]
fn finds_our_own_process_in_proc_and_ignores_the_gone() {
    let me = std::process::id() as i32;
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let mut s = spec(comm.trim(), None, ParamMatch::Exact);
    s.name = "self".to_owned();
    let t = Tracker::new(vec![Matcher::new(&s)]);
    assert_eq!(t.evaluate(me, None), vec![true]);
    assert_eq!(t.evaluate(i32::MAX, None), vec![false], "no such pid");
}
