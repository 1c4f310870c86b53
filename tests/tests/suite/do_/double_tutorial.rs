//! The keepalived tutorial's scripts against the double, inside two lab namespaces that each see
//! their own droplet at the real metadata address `169.254.169.254:80`: `master.sh` (as in the
//! tutorial, URLs unchanged) and a faithful stand-in for `assign-ip` move the reserved IP, and
//! the double's `on_assign` hook moves the address between the namespaces.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use xvrrp_tests::{
    do_double::{Config, DoDouble, DropletSpec, MoveCause, Scope},
    must,
    site::cloud::ASSIGN_IP,
    unique, Netns,
};

const TOKEN: &str = "dop_v1_tutorial_token";
const IP: Ipv4Addr = Ipv4Addr::new(45, 55, 96, 47);
const A: u64 = 2_756_294;
const B: u64 = 2_756_295;

/// The tutorial's `/etc/keepalived/master.sh`. Differences: `python3 ASSIGN_IP` for
/// `python /usr/local/bin/assign-ip`, `sleep ${RETRY_SLEEP:-3}` for `sleep 3` (so a test can
/// retry quickly), and the `[ ... ]` tests have their spaces back (see
/// `tutorial_text_as_printed_never_assigns`).
fn master_sh(assign_ip: &Path) -> String {
    format!(
        r#"export DO_TOKEN='{TOKEN}'
IP='{IP}'
ID=$(curl -s http://169.254.169.254/metadata/v1/id)
HAS_FLOATING_IP=$(curl -s http://169.254.169.254/metadata/v1/floating_ip/ipv4/active)

if [ $HAS_FLOATING_IP = "false" ]; then
    n=0
    while [ $n -lt 10 ]
    do
        python3 {} $IP $ID && break
        n=$((n+1))
        sleep ${{RETRY_SLEEP:-3}}
    done
fi
"#,
        assign_ip.display()
    )
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(unique("do-double-tutorial"));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two droplets in two namespaces, each with its own metadata at 169.254.169.254:80 and its own
/// API listener; the reserved IP (held by A) is an address on the holder's `lo`.
struct Lab {
    double: DoDouble,
    ns: [Netns; 2],
    api: [SocketAddr; 2],
    dir: TempDir,
}

impl Lab {
    fn new() -> Self {
        let ns = [Netns::new("ddta"), Netns::new("ddtb")];
        let double = DoDouble::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Config {
                action_delay: Duration::from_millis(50),
                ..Config::default()
            },
        )
        .unwrap();
        double.add_token(TOKEN, "tutorial", Scope::ReadWrite);
        double.add_reserved_ip(IP, "nyc3", Some(A));
        let mut api = [SocketAddr::from(([0, 0, 0, 0], 0)); 2];
        for (i, (n, id)) in ns.iter().zip([A, B]).enumerate() {
            double.add_droplet(DropletSpec::new(id, &format!("lb-{i}"), "nyc3"));
            n.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
            double
                .serve_metadata_in(n, SocketAddr::from(([169, 254, 169, 254], 80)), id)
                .unwrap();
            api[i] = double
                .serve_api_in(n, SocketAddr::from(([127, 0, 0, 1], 0)))
                .unwrap();
        }
        ns[0].ip(&["addr", "add", &format!("{IP}/32"), "dev", "lo"]);
        let names = [ns[0].name().to_string(), ns[1].name().to_string()];
        double.on_assign(move |m| {
            let of = |id: Option<u64>| match id {
                Some(A) => Some(&names[0]),
                Some(B) => Some(&names[1]),
                _ => None,
            };
            let cidr = format!("{}/32", m.ip);
            if let Some(old) = of(m.old) {
                must(Command::new("ip").args(["-n", old, "addr", "del", &cidr, "dev", "lo"]));
            }
            if let Some(new) = of(m.new) {
                must(Command::new("ip").args(["-n", new, "addr", "add", &cidr, "dev", "lo"]));
            }
        });
        Self {
            double,
            ns,
            api,
            dir: TempDir::new(),
        }
    }

    fn has_ip(&self, i: usize) -> bool {
        self.ns[i]
            .ip(&["-4", "addr", "show", "dev", "lo"])
            .contains(&format!("{IP}/32"))
    }

    /// Writes a script and runs it with bash in namespace `i`, with the env the scripts need.
    fn run(&self, i: usize, name: &str, script: &str, envs: &[(&str, &str)]) -> Output {
        let assign_ip = self.dir.0.join("assign-ip");
        std::fs::write(&assign_ip, ASSIGN_IP).unwrap();
        let path = self.dir.0.join(name);
        std::fs::write(&path, script).unwrap();
        let mut cmd = self.ns[i].command("bash");
        cmd.arg(&path)
            .env("DO_API_BASE", format!("http://{}/v2", self.api[i]))
            .env_remove("DO_TOKEN");
        for p in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(p);
        }
        cmd.envs(envs.iter().copied());
        cmd.output().unwrap()
    }

    fn assign_ip_path(&self) -> PathBuf {
        self.dir.0.join("assign-ip")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn master_sh_moves_the_ip_to_the_new_master() {
    let lab = Lab::new();
    assert!(lab.has_ip(0) && !lab.has_ip(1));
    let script = master_sh(&lab.assign_ip_path());

    // Droplet B becomes master: metadata says it lacks the IP, assign-ip POSTs once.
    let out = lab.run(1, "master.sh", &script, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "Moving IP address: in-progress");
    let d = &lab.double;
    assert!(d.wait_idle(Duration::from_secs(3)));
    assert_eq!(d.holder(IP), Some(B));
    assert!(
        lab.has_ip(1) && !lab.has_ip(0),
        "the hook moved the address"
    );
    let moves = d.moves();
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].old, moves[0].new), (Some(A), Some(B)));
    assert!(matches!(moves[0].cause, MoveCause::Assign { .. }));

    // What the double saw: two metadata reads as B, one POST with the id as a JSON string.
    let reqs = d.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/metadata/v1/id",
            "/metadata/v1/floating_ip/ipv4/active",
            "/v2/floating_ips/45.55.96.47/actions"
        ]
    );
    let post = &reqs[2];
    assert_eq!(post.status, Some(201));
    assert_eq!(post.token_label.as_deref(), Some("tutorial"));
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["droplet_id"], B.to_string());
    assert_eq!(body["type"], "assign");

    // Metadata inside B's namespace now reports the IP as active.
    let active = must(lab.ns[1].command("curl").args([
        "-s",
        "--noproxy",
        "*",
        "http://169.254.169.254/metadata/v1/floating_ip/ipv4/active",
    ]));
    assert_eq!(active, "true");

    // Running it again on B does nothing (already active); on A it moves the IP back.
    let out = lab.run(1, "master.sh", &script, &[]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(d.count("POST", "/v2/"), 1);
    let out = lab.run(0, "master.sh", &script, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(d.wait_idle(Duration::from_secs(3)));
    assert_eq!(d.holder(IP), Some(A));
    assert!(lab.has_ip(0) && !lab.has_ip(1));
    assert_eq!(d.moves().len(), 2);
}

#[test]
fn master_sh_burns_retries_on_pending_events() {
    let lab = Lab::new();
    let d = &lab.double;
    d.pending_event_for(2);
    let script = master_sh(&lab.assign_ip_path());
    let out = lab.run(1, "master.sh", &script, &[("RETRY_SLEEP", "0.1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "unprocessable_entity: The floating IP already has a pending event.\n\
         unprocessable_entity: The floating IP already has a pending event.\n\
         Moving IP address: in-progress\n"
    );
    assert_eq!(d.count("POST", "/v2/floating_ips/"), 3);
    assert!(d.wait_idle(Duration::from_secs(3)));
    assert!(lab.has_ip(1) && !lab.has_ip(0));
}

#[test]
fn assign_ip_reports_api_errors_and_exits_1() {
    let lab = Lab::new();
    let d = &lab.double;
    let run = |args: &str, envs: &[(&str, &str)]| {
        let script = format!(
            "export DO_TOKEN='{TOKEN}'\npython3 {} {args}\n",
            lab.assign_ip_path().display()
        );
        lab.run(1, "call.sh", &script, envs)
    };
    // Already held by the target: 422 printed, exit 1.
    let out = run(&format!("{IP} {A}"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("unprocessable_entity: "));
    assert!(text(&out.stdout).contains("already assigned"));
    // Rate limited: the message, exit 1, retry-after ignored.
    d.rate_limit_next(1, 30);
    let out = run(&format!("{IP} {B}"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "too_many_requests: API rate limit exceeded.\n"
    );
    // Unknown IP.
    let out = run(&format!("198.51.100.7 {B}"), &[]);
    assert_eq!(
        text(&out.stdout),
        "not_found: The resource you requested could not be found.\n"
    );
    assert_eq!(d.holder(IP), Some(A));
    assert!(d.moves().is_empty());
}

#[test]
fn tutorial_text_as_printed_never_assigns() {
    // The tutorial page as archived lost the spaces inside `[ ... ]`: bash then looks for a
    // command named `[false` and the assign branch never runs.
    let lab = Lab::new();
    let script = master_sh(&lab.assign_ip_path())
        .replace(
            "[ $HAS_FLOATING_IP = \"false\" ]",
            "[$HAS_FLOATING_IP = \"false\"]",
        )
        .replace("[ $n -lt 10 ]", "[$n -lt 10]");
    let out = lab.run(1, "master-as-printed.sh", &script, &[]);
    assert!(
        text(&out.stderr).contains("[false: command not found"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(lab.double.count("POST", "/v2/"), 0);
    assert_eq!(lab.double.holder(IP), Some(A));
}

#[test]
fn the_whole_double_can_live_inside_a_namespace() {
    let ns = Netns::new("ddtn");
    let d = DoDouble::start_in(
        &ns,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Config::default(),
    )
    .unwrap();
    d.add_token(TOKEN, "t", Scope::ReadOnly);
    d.add_reserved_ip(IP, "nyc3", None);
    let url = format!("{}/v2/reserved_ips/{IP}", d.api_url());
    let body = must(ns.command("curl").args([
        "-s",
        "--noproxy",
        "*",
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &url,
    ]));
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["reserved_ip"]["droplet"], serde_json::Value::Null);
    assert_eq!(d.requests()[0].token_label.as_deref(), Some("t"));
}
