//! Whether the agent is healthy: what `xvrrp status` exits with (0 healthy, 1 not) and lists.
//!
//! Unhealthy (each is one problem):
//! - an instance in FAULT (a tracker or its interface forced it: it cannot serve);
//! - a virtual address not as the role wants it: wanted (Master) and absent or unreadable, or
//!   added by this agent, unwanted and still present (see [`VipState::as_wanted`]);
//! - a cloud takeover that is blocked (the API refused the token: 401/403, no retries until a
//!   reload or a check accepts it), or that is degraded while the instance is Master (the
//!   reserved IP may not point here: API or metadata failures).
//!
//! Healthy despite appearances (the reading chosen here): a Backup (a standby is doing its
//! job), an instance still in Initialize (start-up), a tracker down that only lowers the
//! priority (that is failover working), and cloud API errors while Backup (no call is needed
//! until it becomes Master; they show in status).

use super::{State, Status, VipState};

impl VipState {
    /// Whether the address is as the role wants it: present when wanted; when unwanted, absent,
    /// or present but not added by this agent (it was there before; never removed).
    pub fn as_wanted(&self) -> bool {
        match self.present {
            Some(p) => p == self.wanted || (!self.wanted && !self.ours),
            None => !self.wanted,
        }
    }
}

impl Status {
    /// What is wrong, one line each (`VI_1: FAULT`); empty when the agent is healthy.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in &self.instances {
            if i.state == State::Fault {
                out.push(format!("{}: FAULT", i.name));
            }
            for a in i.addresses.iter().filter(|a| !a.as_wanted()) {
                let what = match (a.wanted, a.present) {
                    (true, Some(_)) => "absent, wanted",
                    (true, None) => "unreadable, wanted",
                    (false, _) => "present, unwanted",
                };
                out.push(format!(
                    "{}: address {} dev {} {what}",
                    i.name, a.address, a.dev
                ));
            }
            if let Some(c) = &i.cloud {
                if let Some(b) = &c.status.blocked {
                    out.push(format!("{}: cloud takeover blocked: {b}", i.name));
                } else if i.state == State::Master && c.state.starts_with("degraded") {
                    out.push(format!("{}: cloud {}", i.name, c.state));
                }
            }
        }
        out
    }

    /// No [`problems`](Status::problems).
    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::state::{CloudState, CloudStatus, InstanceState, NotifyState};

    pub(crate) fn instance(name: &str, state: State) -> InstanceState {
        InstanceState {
            name: name.to_owned(),
            interface: "eth1".to_owned(),
            vrid: 51,
            version: 3,
            state,
            base_priority: 100,
            effective_priority: 100,
            master_address: None,
            source_address: "10.0.0.1".parse().unwrap(),
            advert_interval_ms: 1000,
            master_adver_interval_ms: 1000,
            master_down_interval_ms: 3609,
            last_transition: None,
            transitions: Default::default(),
            counters: Default::default(),
            advert_send_errors: 0,
            trackers: Vec::new(),
            virtual_addresses: Vec::new(),
            addresses: Vec::new(),
            notify: NotifyState::default(),
            cloud: None,
        }
    }

    fn vip(wanted: bool, present: Option<bool>, ours: bool) -> VipState {
        VipState {
            address: "10.0.0.100/24".to_owned(),
            dev: "eth1".to_owned(),
            wanted,
            present,
            ours,
            failures: 0,
            retrying: None,
            last_error: None,
        }
    }

    fn status(instances: Vec<InstanceState>) -> Status {
        Status {
            instances,
            ..Status::default()
        }
    }

    #[test]
    fn master_and_backup_with_addresses_as_wanted_are_healthy() {
        let mut m = instance("VI_1", State::Master);
        m.addresses.push(vip(true, Some(true), true));
        let mut b = instance("VI_2", State::Backup);
        b.addresses.push(vip(false, Some(false), false));
        // There before the agent started: never removed, not a problem.
        b.addresses.push(vip(false, Some(true), false));
        let st = status(vec![m, b, instance("VI_3", State::Initialize)]);
        assert_eq!(st.problems(), Vec::<String>::new());
        assert!(st.healthy());
    }

    #[test]
    fn fault_and_addresses_not_as_wanted_are_problems() {
        let mut m = instance("VI_1", State::Master);
        m.addresses.push(vip(true, Some(false), false));
        m.addresses.push(vip(true, None, false));
        let mut b = instance("VI_2", State::Backup);
        b.addresses.push(vip(false, Some(true), true));
        let st = status(vec![m, b, instance("VI_3", State::Fault)]);
        assert_eq!(
            st.problems(),
            [
                "VI_1: address 10.0.0.100/24 dev eth1 absent, wanted",
                "VI_1: address 10.0.0.100/24 dev eth1 unreadable, wanted",
                "VI_2: address 10.0.0.100/24 dev eth1 present, unwanted",
                "VI_3: FAULT",
            ]
        );
        assert!(!st.healthy());
    }

    fn cloud(state: &str, blocked: Option<&str>) -> CloudState {
        let mut s = CloudStatus::new("203.0.113.10".parse().unwrap());
        s.blocked = blocked.map(str::to_owned);
        CloudState {
            status: s,
            state: state.to_owned(),
            api_url: "https://api.digitalocean.com".to_owned(),
            reconcile_interval_s: 60,
            takeover_running: false,
            lower_priority_adverts: 0,
        }
    }

    #[test]
    fn a_blocked_takeover_or_a_degraded_one_while_master_is_a_problem() {
        let mut blocked = instance("VI_1", State::Backup);
        blocked.cloud = Some(cloud("degraded: 401", Some("401 Unauthorized")));
        let mut master = instance("VI_2", State::Master);
        master.cloud = Some(cloud("degraded: 503 from the API", None));
        let mut backup = instance("VI_3", State::Backup);
        backup.cloud = Some(cloud("degraded: 503 from the API", None));
        let mut ok = instance("VI_4", State::Master);
        ok.cloud = Some(cloud("ok", None));
        let st = status(vec![blocked, master, backup, ok]);
        assert_eq!(
            st.problems(),
            [
                "VI_1: cloud takeover blocked: 401 Unauthorized",
                "VI_2: cloud degraded: 503 from the API",
            ]
        );
    }
}
