//! The cloud part of an instance's state: DigitalOcean reserved-IP takeover. Never holds the
//! token.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Where the instance's cloud effort stands (drives the `state` string of `xvrrp status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Start-up: droplet id and API probe not done yet.
    Starting,
    /// Not Master: no API calls.
    Backup,
    /// Master, moving (or checking) the IP.
    Assigning,
    /// Master, and the IP was verified to point here.
    Verified,
}

/// The cloud part of an instance's status. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudStatus {
    /// `"digitalocean"`.
    pub provider: String,
    /// The reserved IP.
    pub reserved_ip: Ipv4Addr,
    /// This droplet's id, once the metadata service answered.
    pub droplet_id: Option<u64>,
    /// The holder the API reported last (`None`: unassigned or not known yet).
    pub holder: Option<u64>,
    /// When the API was last read successfully (UTC).
    pub checked_at: Option<String>,
    /// The role of the cloud effort.
    pub role: Role,
    /// The last metadata failure while the droplet id is unknown.
    pub metadata_error: Option<String>,
    /// The last API failure of the current effort (cleared by a success).
    pub api_error: Option<String>,
    /// Set after 401/403: no retries with backoff; a Master re-checks once per
    /// `reconcile_interval` and clears it when the token is accepted again; reload clears it.
    pub blocked: Option<String>,
    /// Whether the start-up probe got an answer.
    pub probed: bool,
    /// API requests made.
    pub api_calls: u64,
    /// Assign POSTs made.
    pub assigns: u64,
    /// Verified moves of the IP to this droplet.
    pub moves: u64,
    /// Milliseconds from the last Master transition to the IP verified here.
    pub last_takeover_ms: Option<u64>,
}

impl CloudStatus {
    /// A fresh status for `ip`.
    pub fn new(ip: Ipv4Addr) -> Self {
        Self {
            provider: "digitalocean".to_owned(),
            reserved_ip: ip,
            droplet_id: None,
            holder: None,
            checked_at: None,
            role: Role::Starting,
            metadata_error: None,
            api_error: None,
            blocked: None,
            probed: false,
            api_calls: 0,
            assigns: 0,
            moves: 0,
            last_takeover_ms: None,
        }
    }

    /// One line for humans and scripts: `starting`, `ok`, `assigning`, `holder: <droplet>`,
    /// `holder: none`, or `degraded: <why>`.
    pub fn state(&self) -> String {
        if let Some(b) = &self.blocked {
            return format!("degraded: {b}");
        }
        if self.droplet_id.is_none() {
            return match &self.metadata_error {
                Some(m) => format!("degraded: droplet id unknown ({m})"),
                None => "starting".to_owned(),
            };
        }
        if let Some(e) = &self.api_error {
            return format!("degraded: {e}");
        }
        match self.role {
            Role::Assigning => "assigning".to_owned(),
            Role::Verified => "ok".to_owned(),
            Role::Starting | Role::Backup => match (self.probed, self.holder) {
                (false, _) => "starting".to_owned(),
                (true, Some(h)) if Some(h) == self.droplet_id => {
                    format!("holder: {h} (this droplet)")
                }
                (true, Some(h)) => format!("holder: {h}"),
                (true, None) => "holder: none".to_owned(),
            },
        }
    }
}

/// The `cloud` object of an instance's status: the takeover's live status and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudState {
    /// The live status.
    #[serde(flatten)]
    pub status: CloudStatus,
    /// [`CloudStatus::state`] at the time of the snapshot.
    pub state: String,
    /// The API base URL.
    pub api_url: String,
    /// Seconds between checks while Master.
    pub reconcile_interval_s: u64,
    /// Whether a takeover task is running.
    pub takeover_running: bool,
    /// Lower-priority adverts received while Master with a takeover running (each asks for a
    /// check of the reserved IP; the checks themselves are spaced out).
    #[serde(default)]
    pub lower_priority_adverts: u64,
}
