//! The DigitalOcean double over real HTTP on loopback: API shapes, the action lifecycle, errors,
//! auth, rate limits, every fault switch, the metadata service, recording and shutdown.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use xvrrp_tests::{
    do_double::{
        client::{request, HttpResponse},
        ActionKind, ActionStatus, Config, DoDouble, DropletSpec, Inferred, IpMove, MoveCause,
        Outage, RateLimits, SameHolder, Scope, Service,
    },
    wait_until,
};

const RW: &str = "dop_v1_readwrite_secret";
const RO: &str = "dop_v1_readonly_secret";
const IP: Ipv4Addr = Ipv4Addr::new(45, 55, 96, 47);
const FREE_IP: Ipv4Addr = Ipv4Addr::new(45, 55, 96, 48);
const A: u64 = 2_756_294;
const B: u64 = 2_756_295;
const FAR: u64 = 3_000_000;

fn lab_with(config: Config) -> DoDouble {
    let d = DoDouble::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap();
    d.add_token(RW, "rw", Scope::ReadWrite);
    d.add_token(RO, "ro", Scope::ReadOnly);
    d.add_droplet(DropletSpec::new(A, "lb-a", "nyc3"));
    d.add_droplet(DropletSpec::new(B, "lb-b", "nyc3"));
    d.add_droplet(DropletSpec::new(FAR, "far", "ams3"));
    d.add_reserved_ip(IP, "nyc3", Some(A));
    d.add_reserved_ip(FREE_IP, "nyc3", None);
    d
}

fn lab(delay_ms: u64) -> DoDouble {
    lab_with(Config {
        action_delay: Duration::from_millis(delay_ms),
        ..Config::default()
    })
}

fn get(d: &DoDouble, path: &str, token: Option<&str>) -> HttpResponse {
    request(d.api_addr(), "GET", path, token, None).unwrap()
}

fn post(d: &DoDouble, path: &str, token: Option<&str>, body: &str) -> HttpResponse {
    request(d.api_addr(), "POST", path, token, Some(body)).unwrap()
}

fn assign(d: &DoDouble, ip: Ipv4Addr, droplet: u64) -> HttpResponse {
    post(
        d,
        &format!("/v2/reserved_ips/{ip}/actions"),
        Some(RW),
        &format!(r#"{{"type":"assign","droplet_id":{droplet}}}"#),
    )
}

fn ip_obj(d: &DoDouble, ip: Ipv4Addr) -> Value {
    let r = get(d, &format!("/v2/reserved_ips/{ip}"), Some(RW));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["reserved_ip"].clone()
}

fn assert_error(r: &HttpResponse, status: u16, id: &str, message_part: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let j = r.json();
    assert_eq!(j["id"], id, "{}", r.body);
    let msg = j["message"].as_str().unwrap();
    assert!(msg.contains(message_part), "{msg:?} lacks {message_part:?}");
    let rid = r.header("x-request-id").unwrap();
    assert_eq!(j["request_id"], rid);
    assert!(r.header("ratelimit-remaining").is_some());
}

fn meta(url: &str, path: &str) -> HttpResponse {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    request(addr, "GET", path, None, None).unwrap()
}

#[test]
fn reserved_ip_body_has_the_documented_shape() {
    let d = lab(20);
    let r = get(&d, &format!("/v2/reserved_ips/{IP}"), Some(RW));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    for h in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-request-id",
    ] {
        assert!(r.header(h).is_some(), "missing {h}");
    }
    let ip = &r.json()["reserved_ip"];
    assert_eq!(ip["ip"], IP.to_string());
    assert_eq!(ip["region"]["slug"], "nyc3");
    assert_eq!(ip["droplet"]["id"], A);
    assert_eq!(ip["droplet"]["name"], "lb-a");
    assert_eq!(ip["locked"], false);
    assert!(ip["project_id"].is_string());

    assert_eq!(ip_obj(&d, FREE_IP)["droplet"], Value::Null);
    let list = get(&d, "/v2/reserved_ips", Some(RW)).json();
    assert_eq!(list["reserved_ips"].as_array().unwrap().len(), 2);
    assert_eq!(list["meta"]["total"], 2);
    let dr = get(&d, &format!("/v2/droplets/{B}"), Some(RW)).json();
    assert_eq!(dr["droplet"]["id"], B);

    assert_error(
        &get(&d, "/v2/reserved_ips/203.0.113.9", Some(RW)),
        404,
        "not_found",
        "could not be found",
    );
    assert_error(&get(&d, "/v2/nothing", Some(RW)), 404, "not_found", "");
}

#[test]
fn assign_runs_as_a_locked_action_then_moves_the_ip_and_fires_the_hook_once() {
    let d = lab(400);
    let seen: Arc<Mutex<Vec<IpMove>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    d.on_assign(move |m| s2.lock().unwrap().push(*m));

    let r = assign(&d, IP, B);
    assert_eq!(r.status, 201, "{}", r.body);
    let a = r.json()["action"].clone();
    assert_eq!(a["status"], "in-progress");
    assert_eq!(a["type"], "assign_ip");
    assert_eq!(a["resource_id"], 758_603_823u32); // 45.55.96.47 as a big-endian u32
    assert_eq!(a["resource_type"], "reserved_ip");
    assert_eq!(a["region_slug"], "nyc3");
    assert_eq!(a["region"]["slug"], "nyc3");
    assert_eq!(a["completed_at"], Value::Null);
    let started = a["started_at"].as_str().unwrap();
    assert!(
        started.len() == 20 && started.ends_with('Z') && started.as_bytes()[10] == b'T',
        "{started}"
    );
    let id = a["id"].as_u64().unwrap();

    // While it runs: locked, holder unchanged, a second assign is refused.
    let ip = ip_obj(&d, IP);
    assert_eq!(ip["locked"], true);
    assert_eq!(ip["droplet"]["id"], A);
    assert_error(
        &assign(&d, IP, B),
        422,
        "unprocessable_entity",
        "The reserved IP already has a pending event.",
    );
    let act = get(&d, &format!("/v2/actions/{id}"), Some(RW)).json();
    assert_eq!(act["action"]["status"], "in-progress");
    assert!(seen.lock().unwrap().is_empty());

    assert!(wait_until(Duration::from_secs(3), || {
        get(&d, &format!("/v2/actions/{id}"), Some(RW)).json()["action"]["status"] == "completed"
    }));
    let act = get(&d, &format!("/v2/reserved_ips/{IP}/actions/{id}"), Some(RW)).json();
    assert_eq!(act["action"]["status"], "completed");
    assert!(act["action"]["completed_at"].is_string());
    let ip = ip_obj(&d, IP);
    assert_eq!(ip["locked"], false);
    assert_eq!(ip["droplet"]["id"], B);
    assert_eq!(d.holder(IP), Some(B));

    // The hook ran exactly once, before "completed" was visible, with the right holders.
    let want = IpMove {
        ip: IP,
        old: Some(A),
        new: Some(B),
        cause: MoveCause::Assign { action_id: id },
    };
    assert_eq!(*seen.lock().unwrap(), vec![want]);
    assert_eq!(d.moves(), vec![want]);

    // Assigning to the holder is not idempotent; nor to a droplet holding another IP.
    assert_error(
        &assign(&d, IP, B),
        422,
        "unprocessable_entity",
        "already assigned",
    );
    assert_error(
        &assign(&d, FREE_IP, B),
        422,
        "unprocessable_entity",
        "already assigned",
    );
    // Unknown droplet: 422 by default; other region: 422.
    assert_error(
        &assign(&d, IP, 42),
        422,
        "unprocessable_entity",
        "could not be found",
    );
    assert_error(
        &assign(&d, IP, FAR),
        422,
        "unprocessable_entity",
        "same region",
    );
    // Unknown IP: 404.
    let r = post(
        &d,
        "/v2/reserved_ips/198.51.100.1/actions",
        Some(RW),
        r#"{"type":"assign","droplet_id":1}"#,
    );
    assert_error(&r, 404, "not_found", "");
    // Bad bodies.
    let path = format!("/v2/reserved_ips/{IP}/actions");
    assert_error(&post(&d, &path, Some(RW), "{nope"), 400, "bad_request", "");
    assert_error(
        &post(&d, &path, Some(RW), r#"{"type":"fly"}"#),
        422,
        "unprocessable_entity",
        "",
    );
    assert_error(
        &post(&d, &path, Some(RW), r#"{"type":"assign"}"#),
        422,
        "unprocessable_entity",
        "droplet_id",
    );

    // Re-assign back is a single assign; the hook sees (B, A).
    assert_eq!(assign(&d, IP, A).status, 201);
    assert!(d.wait_idle(Duration::from_secs(3)));
    let got: Vec<(Option<u64>, Option<u64>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.old, m.new))
        .collect();
    assert_eq!(got, vec![(Some(A), Some(B)), (Some(B), Some(A))]);
}

#[test]
fn unassign_and_zero_delay_and_switchable_inferred_choices() {
    let d = lab(0);
    let r = post(
        &d,
        &format!("/v2/reserved_ips/{IP}/actions"),
        Some(RW),
        r#"{"type":"unassign"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["action"]["type"], "unassign_ip");
    assert_eq!(r.json()["action"]["status"], "in-progress");
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(ip_obj(&d, IP)["droplet"], Value::Null);
    assert_eq!(d.actions()[0].kind, ActionKind::Unassign);
    assert_eq!(d.actions()[0].status, ActionStatus::Completed);
    let again = post(
        &d,
        &format!("/v2/reserved_ips/{IP}/actions"),
        Some(RW),
        r#"{"type":"unassign"}"#,
    );
    assert_error(&again, 422, "unprocessable_entity", "not assigned");

    // First assign of a free IP.
    assert_eq!(assign(&d, IP, A).status, 201);
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(d.holder(IP), Some(A));

    // Inferred choices can be switched.
    d.set_inferred(Inferred {
        same_holder: SameHolder::Accept,
        unknown_droplet_status: 404,
        ..Inferred::default()
    });
    assert_eq!(assign(&d, IP, A).status, 201);
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(d.holder(IP), Some(A));
    assert_error(&assign(&d, IP, 42), 404, "not_found", "");
}

#[test]
fn old_floating_ip_path_and_string_droplet_id() {
    let d = lab(150);
    let r = get(&d, &format!("/v2/floating_ips/{IP}"), Some(RW));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["floating_ip"]["droplet"]["id"], A);
    let path = format!("/v2/floating_ips/{IP}/actions");
    let r = post(
        &d,
        &path,
        Some(RW),
        &format!(r#"{{"type":"assign","droplet_id":"{B}"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["action"]["resource_type"], "floating_ip");
    let again = post(
        &d,
        &path,
        Some(RW),
        &format!(r#"{{"type":"assign","droplet_id":"{B}"}}"#),
    );
    assert_error(
        &again,
        422,
        "unprocessable_entity",
        "The floating IP already has a pending event.",
    );
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(d.holder(IP), Some(B));
    let list = get(&d, "/v2/floating_ips", Some(RW)).json();
    assert_eq!(list["floating_ips"].as_array().unwrap().len(), 2);
}

#[test]
fn auth_401_403_and_the_log_never_holds_a_token() {
    let d = lab(20);
    let path = format!("/v2/reserved_ips/{IP}");
    let r = get(&d, &path, None);
    assert_error(&r, 401, "unauthorized", "Unable to authenticate you.");
    assert_eq!(r.json()["message"], "Unable to authenticate you.");
    assert_error(
        &get(&d, &path, Some("dop_v1_wrong")),
        401,
        "unauthorized",
        "",
    );
    assert_eq!(get(&d, &path, Some(RO)).status, 200);
    let r = post(
        &d,
        &format!("{path}/actions"),
        Some(RO),
        &format!(r#"{{"type":"assign","droplet_id":{B}}}"#),
    );
    assert_error(&r, 403, "forbidden", "You do not have access");
    d.unauthorized(true);
    assert_error(&get(&d, &path, Some(RW)), 401, "unauthorized", "");
    d.unauthorized(false);
    assert_eq!(get(&d, &path, Some(RW)).status, 200);

    let log = d.requests();
    let flags: Vec<(bool, Option<&str>, Option<u16>)> = log
        .iter()
        .map(|r| (r.token_present, r.token_label.as_deref(), r.status))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, None, Some(401)),
            (true, None, Some(401)),
            (true, Some("ro"), Some(200)),
            (true, Some("ro"), Some(403)),
            (true, Some("rw"), Some(401)),
            (true, Some("rw"), Some(200)),
        ]
    );
    let dump = format!("{log:?} {d:?}");
    assert!(!dump.contains("dop_v1_"), "a token leaked: {dump}");
    assert!(log
        .iter()
        .all(|r| r.service == Service::Api && r.request_id.is_some()));
    assert_eq!(d.count("GET", "/v2/reserved_ips/"), 5);
    assert_eq!(d.count("POST", "/v2/"), 1);
    d.clear_requests();
    assert!(d.requests().is_empty());
}

#[test]
fn rate_limit_headers_count_down_then_429_with_retry_after() {
    let d = lab_with(Config {
        rate: RateLimits {
            per_hour: 5,
            per_minute: 3,
            hour: Duration::from_secs(3600),
            minute: Duration::from_millis(1200),
        },
        ..Config::default()
    });
    let path = format!("/v2/reserved_ips/{IP}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut remaining = Vec::new();
    let first = Instant::now();
    for _ in 0..3 {
        let r = get(&d, &path, Some(RW));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-limit"), Some("5"));
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset >= now + 3590 && reset <= now + 3610,
            "{reset} vs {now}"
        );
        remaining.push(r.header("ratelimit-remaining").unwrap().to_string());
    }
    assert_eq!(remaining, ["4", "3", "2"]);
    // Per-minute burst: 429 with retry-after; the rejected call is not counted.
    let r = get(&d, &path, Some(RW));
    assert_error(&r, 429, "too_many_requests", "API rate limit exceeded.");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("2"));
    // Counters are per token.
    assert_eq!(
        get(&d, &path, Some(RO)).header("ratelimit-remaining"),
        Some("4")
    );
    std::thread::sleep(Duration::from_millis(1250).saturating_sub(first.elapsed()));
    assert_eq!(
        get(&d, &path, Some(RW)).header("ratelimit-remaining"),
        Some("1")
    );
    assert_eq!(
        get(&d, &path, Some(RW)).header("ratelimit-remaining"),
        Some("0")
    );
    // Hourly limit: 429 without retry-after.
    let r = get(&d, &path, Some(RW));
    assert_error(&r, 429, "too_many_requests", "");
    assert_eq!(r.header("retry-after"), None);
}

#[test]
fn fault_switches() {
    let d = lab(30);
    let path = format!("/v2/reserved_ips/{IP}");

    // pending_event_for: the next n POSTs get 422 and the IP looks locked meanwhile.
    d.pending_event_for(2);
    assert_eq!(ip_obj(&d, IP)["locked"], true);
    for _ in 0..2 {
        assert_error(
            &assign(&d, IP, B),
            422,
            "unprocessable_entity",
            "already has a pending event",
        );
    }
    assert_eq!(ip_obj(&d, IP)["locked"], false);
    assert_eq!(assign(&d, IP, B).status, 201);
    assert!(d.wait_idle(Duration::from_secs(2)));

    // rate_limit_next.
    d.rate_limit_next(2, 7);
    for _ in 0..2 {
        let r = get(&d, &path, Some(RW));
        assert_error(&r, 429, "too_many_requests", "");
        assert_eq!(r.header("retry-after"), Some("7"));
    }
    assert_eq!(get(&d, &path, Some(RW)).status, 200);

    // fail_5xx.
    d.fail_5xx(2);
    assert_error(
        &get(&d, &path, Some(RW)),
        500,
        "server_error",
        "Unexpected server-side error",
    );
    assert_error(&assign(&d, IP, A), 500, "server_error", "");
    assert_eq!(get(&d, &path, Some(RW)).status, 200);

    // latency.
    d.latency(Duration::from_millis(150));
    let t = Instant::now();
    assert_eq!(get(&d, &path, Some(RW)).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    d.latency(Duration::ZERO);

    // down: close without answering / 503 / hang (clients time out), then back.
    d.down(Some(Outage::Close));
    assert!(request(d.api_addr(), "GET", &path, Some(RW), None).is_err());
    d.down(Some(Outage::Unavailable));
    assert_error(&get(&d, &path, Some(RW)), 503, "service_unavailable", "");
    d.outage(Duration::from_millis(400), Outage::Hang);
    let mut s = TcpStream::connect(d.api_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nauthorization: Bearer {RW}\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let e = s.read(&mut buf).unwrap_err();
    assert!(matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert!(wait_until(Duration::from_secs(2), || {
        request(d.api_addr(), "GET", &path, Some(RW), None).is_ok_and(|r| r.status == 200)
    }));
    let unanswered = d.requests().iter().filter(|r| r.status.is_none()).count();
    assert!(
        unanswered >= 2,
        "closed and hung requests are logged without a status"
    );

    // action_404_for: a fresh action answers 404 for a while.
    d.action_404_for(Duration::from_millis(300));
    let r = assign(&d, IP, A);
    assert_eq!(r.status, 201);
    let id = r.json()["action"]["id"].as_u64().unwrap();
    assert_error(
        &get(&d, &format!("/v2/actions/{id}"), Some(RW)),
        404,
        "not_found",
        "",
    );
    assert!(wait_until(Duration::from_secs(2), || {
        get(&d, &format!("/v2/actions/{id}"), Some(RW)).status == 200
    }));
    // actions_404: the list and every action answer 404; the IP and the POST do not.
    d.actions_404(true);
    for p in [
        format!("/v2/reserved_ips/{IP}/actions"),
        format!("/v2/reserved_ips/{IP}/actions/{id}"),
        format!("/v2/actions/{id}"),
    ] {
        assert_error(&get(&d, &p, Some(RW)), 404, "not_found", "");
    }
    assert_eq!(get(&d, &path, Some(RW)).status, 200);
    d.actions_404(false);
    assert_eq!(
        get(&d, &format!("/v2/reserved_ips/{IP}/actions"), Some(RW)).status,
        200
    );
    // remove_reserved_ip: the IP is gone (404) until added again.
    assert!(d.remove_reserved_ip(FREE_IP));
    assert!(!d.remove_reserved_ip(FREE_IP));
    assert_error(
        &get(&d, &format!("/v2/reserved_ips/{FREE_IP}"), Some(RW)),
        404,
        "not_found",
        "",
    );
    d.add_reserved_ip(FREE_IP, "nyc3", None);
    assert_eq!(
        get(&d, &format!("/v2/reserved_ips/{FREE_IP}"), Some(RW)).status,
        200
    );
    // clear_faults turns everything off.
    d.actions_404(true);
    d.unauthorized(true);
    d.fail_5xx(5);
    d.clear_faults();
    assert_eq!(get(&d, &path, Some(RW)).status, 200);
}

#[test]
fn metadata_answers_per_droplet_and_follows_assignments() {
    let d = lab(150);
    let ma = d.serve_metadata(A).unwrap();
    let mb = d.serve_metadata(B).unwrap();
    assert_ne!(ma, mb);
    assert_eq!(d.metadata_url(A).as_deref(), Some(ma.as_str()));
    assert!(d.serve_metadata(999).is_err());

    assert_eq!(meta(&ma, "/metadata/v1/id").body, A.to_string());
    assert_eq!(meta(&mb, "/metadata/v1/id").body, B.to_string());
    assert_eq!(meta(&ma, "/metadata/v1/hostname").body, "lb-a");
    assert_eq!(meta(&ma, "/metadata/v1/region").body, "nyc3");
    let spec = DropletSpec::new(A, "lb-a", "nyc3");
    assert_eq!(
        meta(&ma, "/metadata/v1/interfaces/private/0/ipv4/address").body,
        spec.private_ipv4.to_string()
    );
    assert_eq!(
        meta(&ma, "/metadata/v1/interfaces/public/0/anchor_ipv4/address").body,
        spec.anchor_ipv4.to_string()
    );
    for kind in ["reserved_ip", "floating_ip"] {
        let p = format!("/metadata/v1/{kind}/ipv4/active");
        let r = meta(&ma, &p);
        assert_eq!((r.status, r.body.as_str()), (200, "true"));
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert_eq!(meta(&mb, &p).body, "false");
    }
    assert_eq!(
        meta(&ma, "/metadata/v1/reserved_ip/ipv4/ip_address").body,
        IP.to_string()
    );
    assert_eq!(
        meta(&mb, "/metadata/v1/reserved_ip/ipv4/ip_address").status,
        404
    );
    let j = meta(&ma, "/metadata/v1.json").json();
    assert_eq!(j["droplet_id"], A);
    assert_eq!(j["hostname"], "lb-a");
    assert_eq!(j["region"], "nyc3");
    assert_eq!(j["reserved_ip"]["ipv4"]["active"], true);
    assert_eq!(j["floating_ip"]["ipv4"]["ip_address"], IP.to_string());
    assert_eq!(
        j["interfaces"]["public"][0]["anchor_ipv4"]["ip_address"],
        spec.anchor_ipv4.to_string()
    );
    let r = meta(&ma, "/metadata/v1");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/metadata/v1/"))
    );
    let r = meta(&ma, "/metadata/v1/interfaces");
    assert_eq!(r.status, 301);
    let idx = meta(&ma, "/metadata/v1/");
    assert_eq!(idx.status, 200);
    assert!(idx.body.lines().any(|l| l == "id") && idx.body.lines().any(|l| l == "interfaces/"));
    assert_eq!(
        meta(&ma, "/metadata/v1/interfaces/").body,
        "private/\npublic/"
    );
    assert_eq!(meta(&ma, "/metadata/v1/nope").status, 404);
    assert_eq!(meta(&ma, "/elsewhere").status, 404);

    // Assign to B: `active` flips only when the action completes.
    assert_eq!(assign(&d, IP, B).status, 201);
    assert_eq!(
        meta(&mb, "/metadata/v1/reserved_ip/ipv4/active").body,
        "false"
    );
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(
        meta(&ma, "/metadata/v1/reserved_ip/ipv4/active").body,
        "false"
    );
    assert_eq!(
        meta(&mb, "/metadata/v1/floating_ip/ipv4/active").body,
        "true"
    );

    // A manual move in the console, seen by metadata and the hook.
    let seen: Arc<Mutex<Vec<IpMove>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    d.on_assign(move |m| s2.lock().unwrap().push(*m));
    d.set_holder(IP, Some(A));
    assert_eq!(
        meta(&ma, "/metadata/v1/reserved_ip/ipv4/active").body,
        "true"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![IpMove {
            ip: IP,
            old: Some(B),
            new: Some(A),
            cause: MoveCause::Manual
        }]
    );

    // Metadata faults, and its requests are recorded per identity without tokens.
    d.metadata_down(true);
    assert!(request(
        ma.trim_start_matches("http://").parse().unwrap(),
        "GET",
        "/metadata/v1/id",
        None,
        None
    )
    .is_err());
    d.metadata_down(false);
    d.metadata_latency(Duration::from_millis(100));
    let t = Instant::now();
    assert_eq!(meta(&mb, "/metadata/v1/id").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(100));
    let by_b = d
        .requests()
        .iter()
        .filter(|r| r.service == Service::Metadata { droplet_id: B })
        .count();
    assert_eq!(by_b, 7);
}

#[test]
fn http_edge_cases_keep_alive_garbage_and_shutdown() {
    let d = lab(20);
    let addr = d.api_addr();
    // Two requests on one keep-alive connection, the second one chunked.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = format!(r#"{{"type":"assign","droplet_id":{B}}}"#);
    write!(
        s,
        "GET /v2/reserved_ips/{IP} HTTP/1.1\r\nauthorization: Bearer {RW}\r\n\r\n\
         POST /v2/reserved_ips/{IP}/actions HTTP/1.1\r\nauthorization: Bearer {RW}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 1, "{raw}");
    assert_eq!(raw.matches("HTTP/1.1 201 Created").count(), 1, "{raw}");

    // Garbage gets a 400 and the server carries on.
    for junk in [
        &b"\x00\xff\x13 what\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /v2 HTTP/1.1\r\ncontent-length: -4\r\n\r\n",
        b"get lower HTTP/1.1\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(junk).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let r = xvrrp_tests::do_double::client::parse_response(&raw).unwrap();
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["id"], "bad_request");
    }
    assert_eq!(
        get(&d, &format!("/v2/reserved_ips/{IP}"), Some(RW)).status,
        200
    );

    // Dropping the double (with an open idle connection) stops every listener.
    let meta_url = d.serve_metadata(A).unwrap();
    let meta_addr: SocketAddr = meta_url.trim_start_matches("http://").parse().unwrap();
    let _idle = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    drop(d);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(TcpStream::connect(addr).is_err());
    assert!(TcpStream::connect(meta_addr).is_err());
}

#[test]
fn a_panicking_hook_errors_the_action_and_the_double_survives() {
    let d = lab(10);
    d.on_assign(|_| panic!("lab could not move the address"));
    let r = assign(&d, IP, B);
    let id = r.json()["action"]["id"].as_u64().unwrap();
    assert!(d.wait_idle(Duration::from_secs(2)));
    let act = get(&d, &format!("/v2/actions/{id}"), Some(RW)).json();
    assert_eq!(act["action"]["status"], "errored");
    assert_eq!(d.holder(IP), Some(A));
    assert!(!d.locked(IP));
    d.on_assign(|_| {});
    assert_eq!(assign(&d, IP, B).status, 201);
    assert!(d.wait_idle(Duration::from_secs(2)));
    assert_eq!(d.holder(IP), Some(B));
}
