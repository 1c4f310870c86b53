//! The typed configuration model, with every default filled in.
//!
//! Defaults are documented next to each field; they follow keepalived 2.2 (`keepalived.conf(5)`)
//! unless stated otherwise. Durations are [`Duration`]s, built once by the parser from the exact
//! number of microseconds written (decimal seconds, at most 6 decimals), so `0.1` is exactly what
//! the user wrote; consumers use them as they are (any range limit is applied, with an error or a
//! warning, while loading). [`Secs`] prints one back in keepalived's decimal-seconds syntax.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A secret (VRRP `auth_pass`, the DigitalOcean API token).
///
/// `Debug`, `Display` and `Serialize` all print `<redacted>`; only [`Secret::expose`] gives the
/// value, for the code that must send it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// Cleared (zeroized) when dropped, so a freed token or password does not linger in the heap.
/// Each clone is its own allocation, cleared when it drops. Copies made elsewhere (the API
/// client's header, see `cloud::client`) are cleared by their owners.
impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What secrets print as.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Never log or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Displays a [`Duration`] as decimal seconds, exactly and without trailing zeros (`1`, `0.1`,
/// `0.000001`): the syntax the configuration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            return write!(f, "{}", self.0.as_secs());
        }
        let frac = format!("{nanos:09}");
        write!(f, "{}.{}", self.0.as_secs(), frac.trim_end_matches('0'))
    }
}

/// Serializes a duration as seconds in a JSON float (`1.0`, `0.35`), as the model did when it
/// held `f64` seconds.
fn ser_secs_f64<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(secs_f64(*d))
}

fn ser_opt_secs_f64<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&secs_f64(*d)),
        None => s.serialize_none(),
    }
}

/// Serializes a whole-seconds duration as a JSON integer (`5`).
fn ser_whole_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Seconds as `f64`, computed from whole microseconds (what the parser produces) so that `0.35`
/// prints as `0.35`.
fn secs_f64(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

/// A whole effective configuration (all includes expanded, all defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Config {
    /// `global_defs { }` (all blocks merged; defaults when absent).
    pub global_defs: GlobalDefs,
    /// `vrrp_script NAME { }` blocks, in file order.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `vrrp_track_process NAME { }` blocks, in file order.
    pub track_processes: Vec<TrackProcess>,
    /// `track_file NAME { }` (or the older `vrrp_track_file`) blocks, in file order.
    pub track_files: Vec<TrackFile>,
    /// `vrrp_track_listen NAME { }` blocks (xvrrp extension), in file order.
    pub track_listens: Vec<TrackListen>,
    /// `vrrp_instance NAME { }` blocks, in file order.
    pub instances: Vec<VrrpInstance>,
}

/// A user (and optional group) that scripts run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptUser {
    /// User name.
    pub user: String,
    /// Group name; default: the user's primary group.
    pub group: Option<String>,
}

/// A notify FIFO (`notify_fifo PATH [USER [GROUP]]` plus `notify_fifo_script`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifyFifo {
    /// FIFO path.
    pub path: String,
    /// Owner of the FIFO when xvrrp creates it; default: the daemon's user.
    pub owner: Option<ScriptUser>,
    /// Script that reads the FIFO (`notify_fifo_script`), if any.
    pub script: Option<String>,
}

/// `global_defs { }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalDefs {
    /// `router_id`; default `None` = the host name, resolved at run time.
    pub router_id: Option<String>,
    /// `vrrp_version`: default VRRP version of instances; default 2.
    pub vrrp_version: u8,
    /// `script_user USER [GROUP]`; default `None` = `keepalived_script` if that user exists,
    /// else root (resolved at run time).
    pub script_user: Option<ScriptUser>,
    /// `enable_script_security`; default false.
    pub enable_script_security: bool,
    /// `vrrp_garp_master_delay` (whole seconds 0..1000): second GARP burst after becoming master;
    /// default 5 s.
    #[serde(serialize_with = "ser_whole_secs")]
    pub vrrp_garp_master_delay: Duration,
    /// `vrrp_garp_master_repeat`: GARPs per burst; default 5.
    pub vrrp_garp_master_repeat: u32,
    /// `vrrp_garp_master_refresh` (whole seconds 0..1000000) between periodic GARP refreshes;
    /// default 0 (off).
    #[serde(serialize_with = "ser_whole_secs")]
    pub vrrp_garp_master_refresh: Duration,
    /// `vrrp_garp_master_refresh_repeat`: GARPs per refresh; default 1.
    pub vrrp_garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval` seconds between GARPs of a burst; default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub vrrp_garp_interval: Duration,
    /// `vrrp_gna_interval` seconds between unsolicited NAs of a burst; default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub vrrp_gna_interval: Duration,
    /// `vrrp_strict`: strict RFC compliance (default for instances' `strict_mode`); default false.
    pub vrrp_strict: bool,
    /// `vrrp_skip_check_adv_addr` (default for instances); default false.
    pub vrrp_skip_check_adv_addr: bool,
    /// `vrrp_check_unicast_src` (default for instances' `check_unicast_src`); default false.
    pub vrrp_check_unicast_src: bool,
    /// `vrrp_lower_prio_no_advert` (default for instances); default false.
    pub vrrp_lower_prio_no_advert: bool,
    /// `vrrp_v3_checksum_rfc9568` (xvrrp extension, default for instances): send VRRPv3 over
    /// IPv4 with the RFC 9568 checksum (no pseudo-header, as Cisco, Juniper and Arista do)
    /// instead of keepalived's RFC 5798 pseudo-header form; default false. Both forms are
    /// always accepted on receive.
    pub vrrp_v3_checksum_rfc9568: bool,
    /// `vrrp_higher_prio_send_advert` (default for instances); default false.
    pub vrrp_higher_prio_send_advert: bool,
    /// `vrrp_mcast_group4`; default 224.0.0.18.
    pub vrrp_mcast_group4: Ipv4Addr,
    /// `vrrp_mcast_group6`; default ff02::12.
    pub vrrp_mcast_group6: Ipv6Addr,
    /// `vrrp_startup_delay` seconds before instances start; default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub vrrp_startup_delay: Duration,
    /// `notify_fifo` (+ `notify_fifo_script`): all state changes; default none.
    pub notify_fifo: Option<NotifyFifo>,
    /// `vrrp_notify_fifo` (+ `vrrp_notify_fifo_script`): VRRP state changes; default none.
    pub vrrp_notify_fifo: Option<NotifyFifo>,
    /// `notify_timeout` seconds (xvrrp extension, default for instances): the longest one
    /// notify script may run before its process group is killed; default 30.
    #[serde(serialize_with = "ser_secs_f64")]
    pub notify_timeout: Duration,
    /// `metrics_address ADDR:PORT` (xvrrp extension): serve Prometheus metrics on
    /// `http://ADDR:PORT/metrics`; `xvrrp run --metrics` overrides it; default none.
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// Default `notify_timeout`.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for GlobalDefs {
    fn default() -> Self {
        Self {
            router_id: None,
            vrrp_version: 2,
            script_user: None,
            enable_script_security: false,
            vrrp_garp_master_delay: Duration::from_secs(5),
            vrrp_garp_master_repeat: 5,
            vrrp_garp_master_refresh: Duration::ZERO,
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            vrrp_strict: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_check_unicast_src: false,
            vrrp_lower_prio_no_advert: false,
            vrrp_v3_checksum_rfc9568: false,
            vrrp_higher_prio_send_advert: false,
            vrrp_mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            vrrp_mcast_group6: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            vrrp_startup_delay: Duration::ZERO,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            notify_timeout: DEFAULT_NOTIFY_TIMEOUT,
            metrics_address: None,
        }
    }
}

/// `vrrp_script NAME { }`: a periodic health check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VrrpScript {
    /// The block's name.
    pub name: String,
    /// `script`: the command line (quoted or not); required.
    pub script: String,
    /// `interval` seconds between runs, 0.01..86400 (values outside are raised or lowered to
    /// the nearest bound, with a warning); default 1.
    #[serde(serialize_with = "ser_secs_f64")]
    pub interval: Duration,
    /// `timeout` seconds before a run counts as failed, 0.01..86400 (as `interval`); default:
    /// the interval.
    #[serde(serialize_with = "ser_secs_f64")]
    pub timeout: Duration,
    /// `weight` -253..253; default 0 (0 = a failure puts the instance in FAULT).
    pub weight: i32,
    /// `weight N reverse`: a failure raises priority by N instead of lowering it; default false.
    pub reverse: bool,
    /// `rise`: successes needed to become OK; default 1.
    pub rise: u32,
    /// `fall`: failures needed to become KO; default 1.
    pub fall: u32,
    /// `user USER [GROUP]`; default: the global `script_user`.
    pub user: Option<ScriptUser>,
    /// `init_fail`: start in the failed state; default false.
    pub init_fail: bool,
}

/// How `vrrp_track_process` matches process parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamMatch {
    /// Parameters must match exactly (keepalived's default).
    Exact,
    /// The given parameters appear somewhere in the command line.
    Partial,
    /// The command line starts with the given parameters.
    Initial,
}

/// `vrrp_track_process NAME { }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackProcess {
    /// The block's name.
    pub name: String,
    /// `process NAME [PARAMS...]`: the process name (or path); required.
    pub process: String,
    /// The parameters after the process name, joined by blanks; default none.
    pub params: Option<String>,
    /// `param_match exact|partial|initial`; default exact.
    pub param_match: ParamMatch,
    /// `full_command`: match the full command line rather than the process name; default false.
    pub full_command: bool,
    /// `weight` -253..253; default 0.
    pub weight: i32,
    /// `weight N reverse`; default false.
    pub reverse: bool,
    /// `quorum`: minimum number of matching processes; default 1.
    pub quorum: u32,
    /// `quorum_max`: maximum number of matching processes; default none (unbounded).
    pub quorum_max: Option<u32>,
    /// `terminate_delay` seconds (or `delay`) before a process loss counts, at most 86400 (a
    /// longer delay is lowered to that, with a warning); default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub terminate_delay: Duration,
    /// `fork_delay` seconds (or `delay`) before a new process counts, at most 86400 (as
    /// `terminate_delay`); default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub fork_delay: Duration,
}

/// `init_file [VALUE] [overwrite]` of a `track_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitFile {
    /// Value written when creating the file; default 0.
    pub value: i64,
    /// Overwrite an existing file too; default false.
    pub overwrite: bool,
}

/// `track_file NAME { }`: a file holding a number that, times the weight, adjusts priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackFile {
    /// The block's name.
    pub name: String,
    /// `file PATH`; required.
    pub file: String,
    /// `weight` -253..253; default 1.
    pub weight: i32,
    /// `weight N reverse`; default false.
    pub reverse: bool,
    /// `init_file`; default none (do not create the file).
    pub init_file: Option<InitFile>,
}

/// `vrrp_track_listen NAME { }` (xvrrp extension): healthy while something listens on a port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackListen {
    /// The block's name.
    pub name: String,
    /// `port N` (repeatable, 1..65535); at least one required. Healthy when all are listened on.
    pub ports: Vec<u16>,
    /// `address ADDR`: only listeners bound to this address (or the wildcard) count; default any.
    pub address: Option<IpAddr>,
    /// `weight` -253..253; default 0 (0 = unhealthy puts the instance in FAULT).
    pub weight: i32,
    /// `stall` seconds: a listener whose accept queue does not drain for this long counts as
    /// down; default none (off).
    #[serde(serialize_with = "ser_opt_secs_f64")]
    pub stall: Option<Duration>,
    /// `rise`; default 1.
    pub rise: u32,
    /// `fall`; default 1.
    pub fall: u32,
}

/// Initial state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP`.
    Backup,
}

/// Address family of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Self {
        if addr.is_ipv4() {
            Self::Ipv4
        } else {
            Self::Ipv6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        })
    }
}

/// One `unicast_peer` entry: `ADDR [min_ttl N] [max_ttl N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnicastPeer {
    /// The peer's address.
    pub address: IpAddr,
    /// `min_ttl`: lowest TTL accepted from this peer; default none (0).
    pub min_ttl: Option<u8>,
    /// `max_ttl`: highest TTL accepted from this peer; default none (255).
    pub max_ttl: Option<u8>,
}

/// Authentication type. Only PASS exists in xvrrp (AH is rejected as unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuthType {
    /// Simple text password (VRRPv2 auth type 1).
    #[serde(rename = "PASS")]
    Pass,
}

/// `authentication { auth_type PASS; auth_pass SECRET }` (VRRPv2 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authentication {
    /// `auth_type`.
    pub auth_type: AuthType,
    /// `auth_pass` (only the first 8 characters go on the wire).
    pub auth_pass: Secret,
}

/// `brd` of a virtual address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Broadcast {
    /// `brd ADDR`.
    Addr(Ipv4Addr),
    /// `brd +`: derived from the prefix (host bits set).
    Auto,
    /// `brd -`: none.
    Off,
}

/// One `virtual_ipaddress` line: `ADDR[/PREFIX] [brd X] [dev IF] [scope S] [label L]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualAddress {
    /// The address.
    pub address: IpAddr,
    /// Prefix length; default 32 (IPv4) or 128 (IPv6).
    pub prefix_len: u8,
    /// `dev`; default: the instance's interface.
    pub dev: String,
    /// `brd`; default none.
    pub brd: Option<Broadcast>,
    /// `scope` (`global`, `site`, `link`, `host`, `nowhere` or 0..255); default `global`.
    pub scope: String,
    /// `label`; default none.
    pub label: Option<String>,
}

/// A reference from an instance to a tracker: `NAME [weight N [reverse]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackRef {
    /// Name of the tracker (`vrrp_script`, `vrrp_track_process`, `track_file`,
    /// `vrrp_track_listen`).
    pub name: String,
    /// Weight; default: the tracker's own weight.
    pub weight: i32,
    /// Reverse the weight; default: the tracker's own `reverse`.
    pub reverse: bool,
}

/// A `track_interface` entry: `IF [weight N [reverse]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInterface {
    /// Interface name.
    pub name: String,
    /// Weight; default 0 (0 = interface down puts the instance in FAULT).
    pub weight: i32,
    /// Reverse the weight; default false.
    pub reverse: bool,
}

/// Where the DigitalOcean token came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The `token_file`.
    File(PathBuf),
    /// An environment variable (`DO_TOKEN` or `DIGITALOCEAN_TOKEN`).
    Env(String),
}

/// `digitalocean { }` inside a `vrrp_instance` (xvrrp extension): move a reserved IP to this
/// droplet while the instance is master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigitalOcean {
    /// `reserved_ip`; required.
    pub reserved_ip: Ipv4Addr,
    /// `token_file` (mode must not grant group/other access); default none, then the
    /// environment (`DO_TOKEN`, else `DIGITALOCEAN_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// Where [`DigitalOcean::token`] was read from.
    pub token_source: TokenSource,
    /// The API token (redacted everywhere).
    pub token: Secret,
    /// `api_url`; default `https://api.digitalocean.com`.
    pub api_url: String,
    /// `metadata_url`; default `http://169.254.169.254`.
    pub metadata_url: String,
    /// `reconcile_interval` seconds between checks that the IP is still here; default 60.
    pub reconcile_interval: Duration,
    /// `insecure_http`: allow a plain `http://` `api_url` to a non-loopback host (the token then
    /// travels in clear; test doubles only); default false.
    pub insecure_http: bool,
}

/// Default `api_url`.
pub const DEFAULT_DO_API_URL: &str = "https://api.digitalocean.com";
/// Default `metadata_url`.
pub const DEFAULT_DO_METADATA_URL: &str = "http://169.254.169.254";
/// Default `reconcile_interval` (seconds).
pub const DEFAULT_DO_RECONCILE_INTERVAL: Duration = Duration::from_secs(60);

/// `vrrp_instance NAME { }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VrrpInstance {
    /// The block's name.
    pub name: String,
    /// `state MASTER|BACKUP` (case-insensitive); default BACKUP, or MASTER when the priority is
    /// 255 (keepalived derives one from the other).
    pub state: InitialState,
    /// `interface`; required.
    pub interface: String,
    /// `virtual_router_id` 1..255; required.
    pub virtual_router_id: u8,
    /// `priority` 1..255; default 100, or 255 when `state MASTER` is given without a priority
    /// (keepalived's rule).
    pub priority: u8,
    /// `advert_int` seconds; default 1. v2: whole seconds 1..255; v3: 0.01..40.95 in 0.01 steps.
    #[serde(serialize_with = "ser_secs_f64")]
    pub advert_int: Duration,
    /// `version` 2|3; default: global `vrrp_version` (IPv6 instances: 3).
    pub version: u8,
    /// Address family: of the virtual addresses, else `unicast_src_ip`, else the first peer,
    /// else IPv4.
    pub family: Family,
    /// `nopreempt` (`preempt` clears it); default false.
    pub nopreempt: bool,
    /// `preempt_delay` seconds 0..1000; default 0.
    #[serde(serialize_with = "ser_secs_f64")]
    pub preempt_delay: Duration,
    /// `mcast_src_ip`; default: the interface's primary address.
    pub mcast_src_ip: Option<IpAddr>,
    /// `unicast_src_ip`; default: the interface's primary address.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { }`; empty = multicast.
    pub unicast_peers: Vec<UnicastPeer>,
    /// `unicast_ttl` 1..255; default 255.
    pub unicast_ttl: u8,
    /// `check_unicast_src`: drop unicast adverts from non-peers; default: global
    /// `vrrp_check_unicast_src`.
    pub check_unicast_src: bool,
    /// `authentication { }`; default none.
    pub authentication: Option<Authentication>,
    /// `virtual_ipaddress { }`.
    pub virtual_ipaddress: Vec<VirtualAddress>,
    /// `virtual_ipaddress_excluded { }` (not in adverts; may be of the other family).
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    /// `track_script { }`.
    pub track_script: Vec<TrackRef>,
    /// `track_interface { }`.
    pub track_interface: Vec<TrackInterface>,
    /// `track_file { }`.
    pub track_file: Vec<TrackRef>,
    /// `track_process { }`.
    pub track_process: Vec<TrackRef>,
    /// `track_listen { }` (xvrrp extension).
    pub track_listen: Vec<TrackRef>,
    /// `notify_master` command line; default none.
    pub notify_master: Option<String>,
    /// `notify_backup` command line; default none.
    pub notify_backup: Option<String>,
    /// `notify_fault` command line; default none.
    pub notify_fault: Option<String>,
    /// `notify_stop` command line; default none.
    pub notify_stop: Option<String>,
    /// `notify` command line (called with `INSTANCE NAME STATE PRIORITY`); default none.
    pub notify: Option<String>,
    /// `notify_timeout` seconds (xvrrp extension); default: global `notify_timeout` (30).
    #[serde(serialize_with = "ser_secs_f64")]
    pub notify_timeout: Duration,
    /// `garp_master_delay` (whole seconds); default: global `vrrp_garp_master_delay` (5).
    #[serde(serialize_with = "ser_whole_secs")]
    pub garp_master_delay: Duration,
    /// `garp_master_repeat`; default: global `vrrp_garp_master_repeat` (5).
    pub garp_master_repeat: u32,
    /// `garp_master_refresh` (whole seconds), 0 = off; default: global
    /// `vrrp_garp_master_refresh` (0).
    #[serde(serialize_with = "ser_whole_secs")]
    pub garp_master_refresh: Duration,
    /// `garp_master_refresh_repeat`; default: global `vrrp_garp_master_refresh_repeat` (1).
    pub garp_master_refresh_repeat: u32,
    /// `garp_interval` seconds; default: global `vrrp_garp_interval` (0).
    #[serde(serialize_with = "ser_secs_f64")]
    pub garp_interval: Duration,
    /// `gna_interval` seconds; default: global `vrrp_gna_interval` (0).
    #[serde(serialize_with = "ser_secs_f64")]
    pub gna_interval: Duration,
    /// `skip_check_adv_addr`; default: global `vrrp_skip_check_adv_addr`.
    pub skip_check_adv_addr: bool,
    /// `strict_mode`; default: global `vrrp_strict`.
    pub strict_mode: bool,
    /// `accept` / `no_accept`; default: accept unless strict mode.
    pub accept: bool,
    /// `dont_track_primary`: ignore the interface's own faults; default false.
    pub dont_track_primary: bool,
    /// `lower_prio_no_advert`; default: global `vrrp_lower_prio_no_advert`.
    pub lower_prio_no_advert: bool,
    /// `v3_checksum_rfc9568` (xvrrp extension); default: global `vrrp_v3_checksum_rfc9568`.
    pub v3_checksum_rfc9568: bool,
    /// `higher_prio_send_advert`; default: global `vrrp_higher_prio_send_advert`.
    pub higher_prio_send_advert: bool,
    /// `digitalocean { }` (xvrrp extension); default none.
    pub digitalocean: Option<DigitalOcean>,
}

impl VrrpInstance {
    /// `advert_int` in centiseconds (rounded to the nearest; validation makes it exact).
    pub fn advert_int_centis(&self) -> u32 {
        // Validated to at most 255 s, so this fits.
        u32::try_from((self.advert_int.as_micros() + 5_000) / 10_000).unwrap_or(u32::MAX)
    }
}
