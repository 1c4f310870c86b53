//! A test double of DigitalOcean's reserved-IP API and droplet metadata service: real HTTP/1.1
//! servers on loopback (or inside a test namespace) that behave as the cloud does, per
//! `docs/digitalocean.md`. No test ever talks to the real API.
//!
//! * API (`/v2/reserved_ips/...` and the old `/v2/floating_ips/...`, `/v2/actions/{id}`,
//!   `/v2/droplets/{id}`): bearer tokens (read-write or read-only), assign/unassign actions that
//!   stay `in-progress` (IP `locked: true`, holder unchanged) for a configurable delay, 422s for
//!   pending events and "already assigned", rolling per-token rate limits with `ratelimit-*`
//!   headers and 429 + `retry-after`, error bodies `{"id","message","request_id"}` plus an
//!   `x-request-id` header.
//! * Metadata: one listener per droplet identity (on loopback, or inside a namespace, e.g. at
//!   `169.254.169.254:80`), plain text, no auth; `reserved_ip/ipv4/active` follows the API state.
//! * Faults switchable at run time, a request log (never the token: only whether one was sent and
//!   the label it was registered under), and an [`IpMove`] hook so a lab can move the address
//!   between namespaces when an action completes.
//!
//! Everything stops on drop (accept loops, connections, the action clock), also on panic.
//!
//! Choices where the doc says "(inferred)" are in [`Inferred`] and can be switched.
//!
//! # API behaviour
//!
//! Every API answer is JSON and carries `x-request-id`, `ratelimit-limit` (the hourly limit),
//! `ratelimit-remaining` and `ratelimit-reset` (Unix seconds when the oldest counted request
//! leaves the hourly window). Errors are `{"id","message","request_id"}`. Order of checks:
//! outage, auth (401), rate limit (429), `rate_limit_next` (429), `fail_5xx` (500), routing.
//!
//! | request | answer |
//! | --- | --- |
//! | no / unknown bearer token, or `unauthorized(true)` | 401 `unauthorized` "Unable to authenticate you." |
//! | POST with a [`Scope::ReadOnly`] token | 403 `forbidden` "You do not have access for the attempted action." |
//! | over the per-minute limit | 429 `too_many_requests` "API rate limit exceeded." + `retry-after` (s until a slot frees); not counted |
//! | over the hourly limit | 429 as above, without `retry-after` |
//! | GET `/v2/reserved_ips` (`/v2/floating_ips`) | 200 `{"reserved_ips":[...],"links":{},"meta":{"total"}}` |
//! | GET `/v2/reserved_ips/{ip}` | 200 `{"reserved_ip":{"ip","region":{"name","slug",...},"droplet":{full droplet}\|null,"locked","project_id"}}`; unknown IP 404 `not_found` |
//! | POST `.../{ip}/actions` `{"type":"assign","droplet_id":N or "N"}` | 201 `{"action":{"id","status":"in-progress","type":"assign_ip","started_at","completed_at":null,"resource_id","resource_type","region","region_slug"}}` |
//! | POST `{"type":"unassign"}` | 201, `type: "unassign_ip"` |
//! | assign/unassign while an action on the IP runs (or `pending_event_for`) | 422 `unprocessable_entity` "The reserved IP already has a pending event." / "The floating IP already has a pending event." |
//! | assign to the holder, or to a droplet holding another IP | 422 "The Droplet is already assigned a reserved IP." (inferred) |
//! | assign to a droplet with an action in progress | 422 "Droplet already has a pending event." |
//! | assign to an unknown droplet | 422 "The Droplet you specified could not be found." (or 404, switchable) |
//! | assign to a droplet in another region | 422 "The Droplet and the reserved IP must be in the same region." |
//! | unassign of an unheld IP | 422 "The reserved IP is not assigned to a Droplet." (inferred) |
//! | missing/invalid `droplet_id`, missing/unknown `type` | 422 |
//! | body not JSON; malformed HTTP | 400 `bad_request` |
//! | GET `.../{ip}/actions`, `.../{ip}/actions/{id}`, `/v2/actions/{id}` | 200 list / `{"action":{...}}`; 404 while younger than `action_404_for`, or while `actions_404` is on |
//! | GET `/v2/droplets/{id}` | 200 `{"droplet":{...}}` |
//! | other paths / methods | 404 `not_found` / 405 `method_not_allowed` |
//!
//! Actions complete on the double's clock thread after [`Config::action_delay`]: the hook runs
//! first, then the holder changes, the lock is released and the action reads `completed` with a
//! `completed_at`. Action ids start at 1000001; times are ISO 8601 UTC (`...Z`).
//!
//! # Metadata behaviour
//!
//! Plain text without trailing newline, no auth, no rate limits: `/metadata/v1/id`, `hostname`,
//! `region`, `interfaces/{private,public}/0/ipv4/{address,netmask,gateway}`, `mac`, `type`,
//! `interfaces/public/0/anchor_ipv4/...`, `{reserved_ip,floating_ip}/ipv4/active` (`true` /
//! `false`: whether this droplet holds any reserved IP now), `.../ipv4/ip_address` (404 when none,
//! inferred), `/metadata/v1.json`. `/metadata/v1/` and other index paths with a trailing slash
//! list their children one per line; without it they answer 301 to the slash form; anything else
//! 404.

mod api;
pub mod client;
mod http;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt, io,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::Netns;

/// Per-token rate limits (rolling windows). DigitalOcean: 5000 per hour and 250 per minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests allowed per long window (reported as `ratelimit-limit`).
    pub per_hour: u32,
    /// Requests allowed per short window (exceeding it gives 429 with `retry-after`).
    pub per_minute: u32,
    /// Length of the long window (an hour; shorten it in tests).
    pub hour: Duration,
    /// Length of the short window (a minute; shorten it in tests).
    pub minute: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_hour: 5000,
            per_minute: 250,
            hour: Duration::from_secs(3600),
            minute: Duration::from_secs(60),
        }
    }
}

/// What an assign to the IP's current holder does (the doc: NOT idempotent, inferred wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameHolder {
    /// 422 `unprocessable_entity` with [`Inferred::already_assigned`] (default).
    Reject,
    /// 201 and an action that completes without changing anything.
    Accept,
}

/// What `/metadata/v1/reserved_ip/ipv4/ip_address` answers when the droplet holds no IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnassignedIpAddress {
    /// 404 (default).
    NotFound,
    /// 200 with an empty body.
    Empty,
}

/// Behaviour the doc marks "(inferred)": each can be switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    /// 422 message for a pending event on `/v2/reserved_ips` (the floating wording is confirmed:
    /// "The floating IP already has a pending event.").
    pub pending_event_reserved: String,
    /// 422 message when the target droplet already holds this IP or another one; `{kind}` is
    /// replaced by "reserved IP" or "floating IP" after the path used.
    pub already_assigned: String,
    /// 422 message for an unassign of an IP nobody holds; `{kind}` as above.
    pub not_assigned: String,
    /// Assign to the current holder.
    pub same_holder: SameHolder,
    /// Status for an assign naming a droplet the double does not know: 422 (default,
    /// `unprocessable_entity`) or 404 (`not_found`).
    pub unknown_droplet_status: u16,
    /// Metadata `ip_address` without an IP.
    pub unassigned_ip_address: UnassignedIpAddress,
}

impl Default for Inferred {
    fn default() -> Self {
        Self {
            pending_event_reserved: "The reserved IP already has a pending event.".into(),
            already_assigned: "The Droplet is already assigned a {kind}.".into(),
            not_assigned: "The {kind} is not assigned to a Droplet.".into(),
            same_holder: SameHolder::Reject,
            unknown_droplet_status: 422,
            unassigned_ip_address: UnassignedIpAddress::NotFound,
        }
    }
}

/// Start-up configuration; everything here can also be changed while running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long an action stays `in-progress` (default 300 ms; zero completes it right after
    /// the POST has been answered).
    pub action_delay: Duration,
    /// Rate limits.
    pub rate: RateLimits,
    /// Inferred behaviour.
    pub inferred: Inferred,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            action_delay: Duration::from_millis(300),
            rate: RateLimits::default(),
            inferred: Inferred::default(),
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reads and actions.
    ReadWrite,
    /// Reads only: POSTs answer 403 `forbidden`.
    ReadOnly,
}

/// A droplet known to the double (the identity its metadata listener answers for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropletSpec {
    /// Droplet id (`/metadata/v1/id`).
    pub id: u64,
    /// Hostname / droplet name.
    pub name: String,
    /// Region slug, e.g. `nyc3`.
    pub region: String,
    /// `interfaces/private/0/ipv4/address`.
    pub private_ipv4: Ipv4Addr,
    /// `interfaces/public/0/ipv4/address`.
    pub public_ipv4: Ipv4Addr,
    /// `interfaces/public/0/anchor_ipv4/address` (where reserved-IP traffic lands).
    pub anchor_ipv4: Ipv4Addr,
}

impl DropletSpec {
    /// A droplet with addresses derived from its id (private `10.132.x.y`, public
    /// `203.0.113.x` (TEST-NET-3), anchor `10.20.x.y`).
    pub fn new(id: u64, name: &str, region: &str) -> Self {
        let b = id.to_be_bytes();
        Self {
            id,
            name: name.into(),
            region: region.into(),
            private_ipv4: Ipv4Addr::new(10, 132, b[6], b[7]),
            public_ipv4: Ipv4Addr::new(203, 0, 113, b[7]),
            anchor_ipv4: Ipv4Addr::new(10, 20, b[6], b[7]),
        }
    }
}

/// How the API behaves while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Reads each request, then closes the connection without answering (clients see an empty
    /// reply / connection reset).
    Close,
    /// Answers 503 `service_unavailable` (JSON error body, rate-limit headers).
    Unavailable,
    /// Keeps the connection open without answering until the outage ends (clients time out),
    /// then closes it.
    Hang,
}

/// Which server a recorded request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The API.
    Api,
    /// The metadata listener of this droplet.
    Metadata {
        /// The droplet identity the listener answers for.
        droplet_id: u64,
    },
}

/// One request as the double saw it. The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Wall-clock time it was answered.
    pub at: SystemTime,
    /// Time since the double started.
    pub since_start: Duration,
    /// Which server.
    pub service: Service,
    /// HTTP method.
    pub method: String,
    /// Path (without the query string).
    pub path: String,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// Status returned; `None` when the connection was closed or hung without an answer.
    pub status: Option<u16>,
    /// Whether an `Authorization` header was sent.
    pub token_present: bool,
    /// The label of the registered token used, if it was a valid one.
    pub token_label: Option<String>,
    /// The `x-request-id` returned (API only).
    pub request_id: Option<String>,
}

/// Why a reserved IP changed holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveCause {
    /// An `assign` action completed.
    Assign {
        /// The action.
        action_id: u64,
    },
    /// An `unassign` action completed.
    Unassign {
        /// The action.
        action_id: u64,
    },
    /// [`DoDouble::set_holder`] (a move made "in the console").
    Manual,
}

/// A completed change of holder, passed to the [`DoDouble::on_assign`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMove {
    /// The reserved IP.
    pub ip: Ipv4Addr,
    /// Holder before.
    pub old: Option<u64>,
    /// Holder after.
    pub new: Option<u64>,
    /// What caused it.
    pub cause: MoveCause,
}

/// Action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// `assign_ip`.
    Assign,
    /// `unassign_ip`.
    Unassign,
}

/// Action status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// `in-progress`.
    InProgress,
    /// `completed`.
    Completed,
    /// `errored` (the [`DoDouble::on_assign`] hook panicked; the holder did not change).
    Errored,
}

/// A snapshot of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    /// Action id.
    pub id: u64,
    /// Type.
    pub kind: ActionKind,
    /// Status.
    pub status: ActionStatus,
    /// The reserved IP.
    pub ip: Ipv4Addr,
    /// Target droplet of an assign.
    pub droplet_id: Option<u64>,
}

/// Which name the resource was reached under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Reserved,
    Floating,
}

impl Flavor {
    fn key(self) -> &'static str {
        match self {
            Self::Reserved => "reserved_ip",
            Self::Floating => "floating_ip",
        }
    }
    fn words(self) -> &'static str {
        match self {
            Self::Reserved => "reserved IP",
            Self::Floating => "floating IP",
        }
    }
}

#[derive(Debug, Clone)]
struct IpState {
    region: String,
    holder: Option<u64>,
    pending: Option<u64>,
}

#[derive(Debug, Clone)]
struct Action {
    id: u64,
    kind: ActionKind,
    ip: Ipv4Addr,
    target: Option<u64>,
    status: ActionStatus,
    flavor: Flavor,
    region: String,
    started: SystemTime,
    started_at: Instant,
    due: Instant,
    completed: Option<SystemTime>,
    /// The hook is running for it (still reported in-progress).
    finishing: bool,
}

#[derive(Debug, Default)]
struct Faults {
    pending_event: u32,
    rate_limit: u32,
    rate_limit_retry_after: u64,
    fail_5xx: u32,
    latency: Duration,
    outage: Option<(Outage, Option<Instant>)>,
    action_404: Duration,
    actions_404: bool,
    unauthorized: bool,
    metadata_latency: Duration,
    metadata_down: bool,
}

impl Faults {
    fn outage(&self) -> Option<Outage> {
        match self.outage {
            Some((o, None)) => Some(o),
            Some((o, Some(until))) if Instant::now() < until => Some(o),
            _ => None,
        }
    }
}

struct Token {
    label: String,
    scope: Scope,
}

/// Everything behind the one lock.
struct State {
    config: Config,
    tokens: HashMap<String, Token>,
    droplets: BTreeMap<u64, DropletSpec>,
    ips: BTreeMap<Ipv4Addr, IpState>,
    actions: BTreeMap<u64, Action>,
    next_action: u64,
    faults: Faults,
    rate: HashMap<String, VecDeque<Instant>>,
    log: Vec<RecordedRequest>,
    moves: Vec<IpMove>,
}

type Hook = Arc<dyn Fn(&IpMove) + Send + Sync>;

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
    started: Instant,
    hook: Mutex<Option<Hook>>,
    request_seq: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, st: &mut State, mut rec: RecordedRequest) {
        rec.since_start = self.started.elapsed();
        st.log.push(rec);
    }

    /// Sleeps `d` (an injected latency), cut short when the double is dropped.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::SeqCst) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(10)));
        }
    }

    /// A fresh UUID-shaped request id.
    fn request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let seed = self.started.elapsed().as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
        let mut rng = fastrand::Rng::with_seed(seed ^ n);
        let (a, b) = (rng.u64(..), rng.u64(..));
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// ISO 8601 UTC, second precision (`2024-05-01T12:00:00Z`).
fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

struct MetadataListener {
    droplet_id: u64,
    on_loopback: bool,
    server: http::Server,
}

/// The running double. Dropping it stops every listener and thread it started.
pub struct DoDouble {
    inner: Arc<Inner>,
    api: Option<http::Server>,
    extra_api: Mutex<Vec<http::Server>>,
    metadata: Mutex<Vec<MetadataListener>>,
    clock: Option<JoinHandle<()>>,
}

impl fmt::Debug for DoDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never shows tokens.
        f.debug_struct("DoDouble")
            .field("api", &self.api.as_ref().map(http::Server::addr))
            .finish_non_exhaustive()
    }
}

impl DoDouble {
    /// Starts the API on `bind` (use `127.0.0.1:0`) with the default [`Config`].
    pub fn start(bind: SocketAddr) -> io::Result<Self> {
        Self::start_with(bind, Config::default())
    }

    /// Starts the API on `bind` with `config`.
    pub fn start_with(bind: SocketAddr, config: Config) -> io::Result<Self> {
        Self::from_listener(TcpListener::bind(bind)?, config)
    }

    /// Starts the API listening inside `netns` (the socket is created by a thread that entered
    /// it, and keeps that namespace); requests must come from inside the namespace.
    pub fn start_in(netns: &Netns, bind: SocketAddr, config: Config) -> io::Result<Self> {
        Self::from_listener(netns.run(move || TcpListener::bind(bind))?, config)
    }

    fn from_listener(listener: TcpListener, config: Config) -> io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                config,
                tokens: HashMap::new(),
                droplets: BTreeMap::new(),
                ips: BTreeMap::new(),
                actions: BTreeMap::new(),
                next_action: 1_000_001,
                faults: Faults::default(),
                rate: HashMap::new(),
                log: Vec::new(),
                moves: Vec::new(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            hook: Mutex::new(None),
            request_seq: AtomicU64::new(0),
        });
        let api = http::Server::spawn(listener, Arc::new(api::ApiHandler(Arc::clone(&inner))))?;
        let inner2 = Arc::clone(&inner);
        let clock = thread::Builder::new()
            .name("do-double clock".into())
            .spawn(move || action_clock(&inner2))?;
        Ok(Self {
            inner,
            api: Some(api),
            extra_api: Mutex::new(Vec::new()),
            metadata: Mutex::new(Vec::new()),
            clock: Some(clock),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
            .as_ref()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), http::Server::addr)
    }

    /// The API base URL, e.g. `http://127.0.0.1:41234` (append `/v2/...`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr())
    }

    /// Starts one more API listener, on `addr` inside `netns`, sharing this double's state (so
    /// each lab namespace can reach the API at an address of its own).
    pub fn serve_api_in(&self, netns: &Netns, addr: SocketAddr) -> io::Result<SocketAddr> {
        let l = netns.run(move || TcpListener::bind(addr))?;
        let server = http::Server::spawn(l, Arc::new(api::ApiHandler(Arc::clone(&self.inner))))?;
        let addr = server.addr();
        self.extra_api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(server);
        Ok(addr)
    }

    // ---- setup ----

    /// Registers an API token under `label` (the label, never the token, appears in the log).
    pub fn add_token(&self, token: &str, label: &str, scope: Scope) {
        self.st().tokens.insert(
            token.to_string(),
            Token {
                label: label.into(),
                scope,
            },
        );
    }

    /// Registers a droplet (no metadata listener yet: see [`DoDouble::serve_metadata`]).
    pub fn add_droplet(&self, spec: DropletSpec) {
        self.st().droplets.insert(spec.id, spec);
    }

    /// Registers a reserved IP in `region`, held by `holder` (or unassigned).
    pub fn add_reserved_ip(&self, ip: Ipv4Addr, region: &str, holder: Option<u64>) {
        self.st().ips.insert(
            ip,
            IpState {
                region: region.into(),
                holder,
                pending: None,
            },
        );
    }

    /// Starts a metadata listener on `127.0.0.1:0` answering as droplet `droplet_id` and returns
    /// its base URL (`http://127.0.0.1:PORT`, append `/metadata/v1/...`).
    pub fn serve_metadata(&self, droplet_id: u64) -> io::Result<String> {
        let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = self.add_metadata_listener(l, droplet_id, true)?;
        Ok(format!("http://{addr}"))
    }

    /// Starts a metadata listener on `addr` inside `netns` (e.g. `169.254.169.254:80` on an
    /// address the test configured in that namespace) answering as droplet `droplet_id`.
    pub fn serve_metadata_in(
        &self,
        netns: &Netns,
        addr: SocketAddr,
        droplet_id: u64,
    ) -> io::Result<SocketAddr> {
        let l = netns.run(move || TcpListener::bind(addr))?;
        self.add_metadata_listener(l, droplet_id, false)
    }

    fn add_metadata_listener(
        &self,
        l: TcpListener,
        droplet_id: u64,
        on_loopback: bool,
    ) -> io::Result<SocketAddr> {
        if !self.st().droplets.contains_key(&droplet_id) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("droplet {droplet_id} is not registered"),
            ));
        }
        let handler = api::MetadataHandler {
            inner: Arc::clone(&self.inner),
            droplet_id,
        };
        let server = http::Server::spawn(l, Arc::new(handler))?;
        let addr = server.addr();
        self.metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(MetadataListener {
                droplet_id,
                on_loopback,
                server,
            });
        Ok(addr)
    }

    /// Base URL of the first loopback metadata listener of `droplet_id`.
    pub fn metadata_url(&self, droplet_id: u64) -> Option<String> {
        self.metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|m| m.droplet_id == droplet_id && m.on_loopback)
            .map(|m| format!("http://{}", m.server.addr()))
    }

    /// Called (on the double's clock thread, without any lock held) each time an IP changes
    /// holder: when an assign or unassign action completes (before the API reports it
    /// `completed`, so the lab has moved the address by then), and on [`DoDouble::set_holder`].
    /// If the hook panics, the action ends `errored` and the holder does not change.
    pub fn on_assign(&self, hook: impl Fn(&IpMove) + Send + Sync + 'static) {
        *self
            .inner
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
    }

    // ---- state ----

    /// Moves `ip` to `holder` at once, as a manual move in the console would (no action; the
    /// hook is called with [`MoveCause::Manual`]).
    pub fn set_holder(&self, ip: Ipv4Addr, holder: Option<u64>) {
        let mv = {
            let mut st = self.st();
            let Some(s) = st.ips.get_mut(&ip) else {
                return;
            };
            let mv = IpMove {
                ip,
                old: s.holder,
                new: holder,
                cause: MoveCause::Manual,
            };
            s.holder = holder;
            st.moves.push(mv);
            mv
        };
        let hook = self
            .inner
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(h) = hook {
            h(&mv);
        }
    }

    /// The droplet holding `ip`.
    pub fn holder(&self, ip: Ipv4Addr) -> Option<u64> {
        self.st().ips.get(&ip).and_then(|s| s.holder)
    }

    /// Whether `ip` has an action in progress.
    pub fn locked(&self, ip: Ipv4Addr) -> bool {
        self.st().ips.get(&ip).is_some_and(|s| s.pending.is_some())
    }

    /// All actions so far, oldest first.
    pub fn actions(&self) -> Vec<ActionInfo> {
        self.st()
            .actions
            .values()
            .map(|a| ActionInfo {
                id: a.id,
                kind: a.kind,
                status: a.status,
                ip: a.ip,
                droplet_id: a.target,
            })
            .collect()
    }

    /// Every completed holder change so far (what the hook was given), oldest first.
    pub fn moves(&self) -> Vec<IpMove> {
        self.st().moves.clone()
    }

    /// Waits until no action is in progress; returns whether that happened within `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.st();
        loop {
            if st
                .actions
                .values()
                .all(|a| a.status != ActionStatus::InProgress)
            {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .wake
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(20)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    // ---- configuration ----

    /// How long subsequent actions stay in progress.
    pub fn set_action_delay(&self, delay: Duration) {
        self.st().config.action_delay = delay;
    }

    /// Replaces the rate limits (counters are kept).
    pub fn set_rate_limits(&self, rate: RateLimits) {
        self.st().config.rate = rate;
    }

    /// Replaces the inferred behaviour.
    pub fn set_inferred(&self, inferred: Inferred) {
        self.st().config.inferred = inferred;
    }

    // ---- faults ----

    /// The next `n` action POSTs answer 422 "... already has a pending event."; meanwhile every
    /// reserved IP shows `locked: true` (someone else's action is pending).
    pub fn pending_event_for(&self, n: u32) {
        self.st().faults.pending_event = n;
    }

    /// The next `n` API requests answer 429 `too_many_requests` with `retry-after: retry_after_s`.
    pub fn rate_limit_next(&self, n: u32, retry_after_s: u64) {
        let mut st = self.st();
        st.faults.rate_limit = n;
        st.faults.rate_limit_retry_after = retry_after_s;
    }

    /// The next `n` API requests answer 500 `server_error`.
    pub fn fail_5xx(&self, n: u32) {
        self.st().faults.fail_5xx = n;
    }

    /// Every API answer is delayed by `d` (zero turns it off).
    pub fn latency(&self, d: Duration) {
        self.st().faults.latency = d;
    }

    /// Every metadata answer is delayed by `d`.
    pub fn metadata_latency(&self, d: Duration) {
        self.st().faults.metadata_latency = d;
    }

    /// Metadata listeners close connections without answering while `down`.
    pub fn metadata_down(&self, down: bool) {
        self.st().faults.metadata_down = down;
    }

    /// Takes the API down in the given way until called with `None`.
    pub fn down(&self, outage: Option<Outage>) {
        self.st().faults.outage = outage.map(|o| (o, None));
    }

    /// Takes the API down for `d` from now.
    pub fn outage(&self, d: Duration, how: Outage) {
        self.st().faults.outage = Some((how, Some(Instant::now() + d)));
    }

    /// GETs of an action younger than `d` answer 404 (as seen right after the POST).
    pub fn action_404_for(&self, d: Duration) {
        self.st().faults.action_404 = d;
    }

    /// While set, the actions sub-resources answer 404: the list of an IP's actions and every
    /// action's status (`GET .../actions`, `.../actions/{id}`, `/v2/actions/{id}`); the IP itself
    /// and the assign POST answer as usual. The ambiguous answer of issue 11 item 5.
    pub fn actions_404(&self, on: bool) {
        self.st().faults.actions_404 = on;
    }

    /// Deletes a reserved IP (every call about it then answers 404); `false` if it was unknown.
    pub fn remove_reserved_ip(&self, ip: Ipv4Addr) -> bool {
        self.st().ips.remove(&ip).is_some()
    }

    /// While set, every API call answers 401 (as a revoked token would).
    pub fn unauthorized(&self, on: bool) {
        self.st().faults.unauthorized = on;
    }

    /// Turns every fault off.
    pub fn clear_faults(&self) {
        self.st().faults = Faults::default();
    }

    // ---- recording ----

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.st().log.clone()
    }

    /// How many API or metadata requests had `method` and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.st()
            .log
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.st().log.clear();
    }
}

impl Drop for DoDouble {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        self.api.take();
        self.extra_api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if let Some(t) = self.clock.take() {
            let _ = t.join();
        }
    }
}

/// Completes due actions: marks them finishing, runs the hook without the lock, then applies.
fn action_clock(inner: &Inner) {
    let mut st = inner.lock();
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let running = || {
            st.actions
                .values()
                .filter(|a| a.status == ActionStatus::InProgress && !a.finishing)
        };
        let due: Vec<u64> = running().filter(|a| a.due <= now).map(|a| a.id).collect();
        if due.is_empty() {
            let wait = running()
                .map(|a| a.due.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            st = inner
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let mut jobs = Vec::new();
        for id in due {
            let State { actions, ips, .. } = &mut *st;
            let Some(a) = actions.get_mut(&id) else {
                continue;
            };
            a.finishing = true;
            let old = ips.get(&a.ip).and_then(|s| s.holder);
            let (new, cause) = match a.kind {
                ActionKind::Assign => (a.target, MoveCause::Assign { action_id: id }),
                ActionKind::Unassign => (None, MoveCause::Unassign { action_id: id }),
            };
            jobs.push(IpMove {
                ip: a.ip,
                old,
                new,
                cause,
            });
        }
        drop(st);
        let hook = inner
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let results: Vec<(IpMove, bool)> = jobs
            .into_iter()
            .map(|mv| {
                let ok = hook
                    .as_ref()
                    .is_none_or(|h| catch_unwind(AssertUnwindSafe(|| h(&mv))).is_ok());
                (mv, ok)
            })
            .collect();
        st = inner.lock();
        for (mv, ok) in results {
            let id = match mv.cause {
                MoveCause::Assign { action_id } | MoveCause::Unassign { action_id } => action_id,
                MoveCause::Manual => continue,
            };
            let State {
                actions,
                ips,
                moves,
                ..
            } = &mut *st;
            if let Some(a) = actions.get_mut(&id) {
                a.finishing = false;
                a.status = if ok {
                    ActionStatus::Completed
                } else {
                    ActionStatus::Errored
                };
                a.completed = Some(SystemTime::now());
            }
            if let Some(s) = ips.get_mut(&mv.ip) {
                if s.pending == Some(id) {
                    s.pending = None;
                }
                if ok {
                    s.holder = mv.new;
                }
            }
            if ok {
                moves.push(mv);
            }
        }
        inner.wake.notify_all();
    }
}
