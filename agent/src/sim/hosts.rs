//! Hosts with many instances each, one event loop per host, in virtual time.
//!
//! [`super::Sim`] runs one VRID across nodes and treats every node as infinitely fast. Real
//! agents run dozens to hundreds of instances on **one** event loop: while the loop carries out
//! one instance's actions, every other instance's timer waits. This model makes that cost
//! visible. Each host is a single server: an event (a timer or a delivered advert) is handled at
//! `max(arrival, busy_until)`, and each action it produces keeps the loop busy for its cost
//! ([`LoopCost`]); an advert leaves at the moment its send is reached. With announcements carried
//! out on the loop at ~15 ms each (what the first agent did), a 25-Master burst holds the loop
//! for seconds and the peer's Backups take over: the flapping of issue "Many instances keep
//! time". With announcements queued to a worker (cost ~0 on the loop) it does not happen.
//!
//! Deterministic: events are ordered by `(time, insertion sequence)`; delays come from a seeded
//! [`Rng`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::Rng;
use crate::vrrp::time::micros;
use crate::vrrp::{Action, Event, Instance, Params, ParamsError, State, Time};

/// What each action costs the host's event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopCost {
    /// Handling one event in the core.
    pub per_event: Duration,
    /// Encoding and sending one advert.
    pub per_advert: Duration,
    /// Adding or removing the addresses of one instance.
    pub per_address_change: Duration,
    /// One announcement burst (`SendGratuitous`) as seen by the loop: zero when it is queued to
    /// a worker; `repeat x per-packet cost` when sent inline.
    pub per_announce: Duration,
}

/// One advert on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireAdvert {
    /// When it left the sender.
    pub at: Time,
    /// Sending host.
    pub host: usize,
    /// VRID.
    pub vrid: u8,
    /// Priority field.
    pub priority: u8,
}

/// One state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTransition {
    /// When.
    pub at: Time,
    /// Host.
    pub host: usize,
    /// VRID.
    pub vrid: u8,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer {
        host: usize,
        inst: usize,
    },
    Deliver {
        host: usize,
        from: usize,
        vrid: u8,
        priority: u8,
        interval_us: u64,
    },
}

struct Host {
    instances: Vec<Instance>,
    /// VRID -> index in `instances`.
    by_vrid: [Option<usize>; 256],
    busy_until: Time,
    alive: bool,
}

/// Hosts on one segment, each running many instances on one loop.
pub struct HostSim {
    hosts: Vec<Host>,
    queue: BinaryHeap<Reverse<(Time, u64, Ev)>>,
    seq: u64,
    now: Time,
    cost: LoopCost,
    rng: Rng,
    delay_max: Duration,
    wire: Vec<WireAdvert>,
    transitions: Vec<HostTransition>,
}

/// The address of host `h` (10.0.0.h+1): what its instances use as primary address.
pub fn host_address(h: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, u8::try_from(h + 1).unwrap_or(255)))
}

impl HostSim {
    /// Hosts with the given instances (each host's VRIDs distinct; primary addresses should be
    /// [`host_address`]), a loop cost model, and one-way delays uniform in `0..=delay_max`.
    /// Every instance starts at time 0.
    pub fn new(
        seed: u64,
        hosts: Vec<Vec<Params>>,
        cost: LoopCost,
        delay_max: Duration,
    ) -> Result<Self, ParamsError> {
        let mut hs = Vec::new();
        for params in hosts {
            let mut by_vrid = [None; 256];
            let mut instances = Vec::new();
            for p in params {
                by_vrid[usize::from(p.vrid)] = Some(instances.len());
                instances.push(Instance::new(p)?);
            }
            hs.push(Host {
                instances,
                by_vrid,
                busy_until: Time::ZERO,
                alive: true,
            });
        }
        let mut sim = Self {
            hosts: hs,
            queue: BinaryHeap::new(),
            seq: 0,
            now: Time::ZERO,
            cost,
            rng: Rng::new(seed),
            delay_max,
            wire: Vec::new(),
            transitions: Vec::new(),
        };
        for h in 0..sim.hosts.len() {
            for i in 0..sim.hosts[h].instances.len() {
                sim.process(h, i, Time::ZERO, Event::Startup);
            }
        }
        Ok(sim)
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Handles `ev` for instance `i` of host `h`, arriving at `at`: waits for the loop, then
    /// carries the actions out one after another, each at its cost.
    fn process(&mut self, h: usize, i: usize, at: Time, ev: Event) {
        let cost = self.cost;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if !host.alive {
            return;
        }
        let mut t = at.max(host.busy_until).add_micros(micros(cost.per_event));
        let Some(inst) = host.instances.get_mut(i) else {
            return;
        };
        let vrid = inst.params().vrid;
        let interval_us = micros(inst.params().advert_interval);
        let actions = inst.handle(t, ev);
        let mut sends = Vec::new();
        let mut timers = Vec::new();
        for a in actions {
            match a {
                Action::SendAdvert { priority } => {
                    t = t.add_micros(micros(cost.per_advert));
                    sends.push((t, priority));
                }
                Action::AddAddresses | Action::RemoveAddresses => {
                    t = t.add_micros(micros(cost.per_address_change));
                }
                Action::SendGratuitous => t = t.add_micros(micros(cost.per_announce)),
                Action::ArmTimer { at } => timers.push(at),
                Action::StateChanged { from, to, .. } => self.transitions.push(HostTransition {
                    at: t,
                    host: h,
                    vrid,
                    from,
                    to,
                }),
                Action::CancelTimer | Action::Notify(_) => {}
            }
        }
        host.busy_until = t;
        for at in timers {
            self.push(at, Ev::Timer { host: h, inst: i });
        }
        for (sent, priority) in sends {
            self.wire.push(WireAdvert {
                at: sent,
                host: h,
                vrid,
                priority,
            });
            for to in 0..self.hosts.len() {
                if to == h {
                    continue;
                }
                let d = self.rng.range(0, micros(self.delay_max));
                self.push(
                    sent.add_micros(d),
                    Ev::Deliver {
                        host: to,
                        from: h,
                        vrid,
                        priority,
                        interval_us,
                    },
                );
            }
        }
    }

    /// Runs every event up to `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some(Reverse((at, _, ev))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            match ev {
                Ev::Timer { host, inst } => self.process(host, inst, at, Event::TimerFired),
                Ev::Deliver {
                    host,
                    from,
                    vrid,
                    priority,
                    interval_us,
                } => {
                    let Some(i) = self
                        .hosts
                        .get(host)
                        .and_then(|x| x.by_vrid[usize::from(vrid)])
                    else {
                        continue;
                    };
                    let ev = Event::AdvertReceived {
                        src: host_address(from),
                        priority,
                        max_advert_interval: Duration::from_micros(interval_us),
                    };
                    self.process(host, i, at, ev);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Stops host `h` at once (SIGKILL): no more adverts, timers or receptions.
    pub fn kill(&mut self, h: usize) {
        if let Some(host) = self.hosts.get_mut(h) {
            host.alive = false;
        }
    }

    /// The state of `vrid` on host `h`.
    pub fn state(&self, h: usize, vrid: u8) -> Option<State> {
        let host = self.hosts.get(h)?;
        let i = host.by_vrid[usize::from(vrid)]?;
        host.instances.get(i).map(Instance::state)
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Every advert sent so far.
    pub fn wire(&self) -> &[WireAdvert] {
        &self.wire
    }

    /// Every state change so far.
    pub fn transitions(&self) -> &[HostTransition] {
        &self.transitions
    }
}
