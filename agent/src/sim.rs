//! A deterministic simulator: N [`Instance`]s on one simulated segment in virtual time.
//!
//! Everything is a function of the seed and the [`Scenario`]: events sit in a queue ordered by
//! `(time, insertion sequence)`, and the only randomness (loss and per-packet delay) comes from a
//! seeded [`Rng`] drawn in event order. [`Sim::replay`] therefore reproduces a run
//! exactly, and [`Sim::format_trace`] prints it.
//!
//! The network model: an advert sent by one node is delivered to every other node after a delay
//! drawn uniformly from `[delay_min, delay_max]`, unless lost (drawn at send time) or the two
//! nodes are in different partition groups *at delivery time*, or the receiver is crashed. Nodes
//! do not hear their own adverts. Each (sender, receiver) link is **FIFO**, as on one L2
//! segment: a packet is never delivered before an earlier packet on the same link (this never
//! pushes a delivery past `delay_max`). Independent reordering would let the departing master's
//! last regular advert overtake its priority-0 advert and undo the Skew_Time takeover (the RFC
//! has no defence against that), which the property tests first found. Crashed nodes stop silently (their timers are dropped);
//! restarted nodes are a fresh [`Instance`] given [`Event::Startup`].

pub mod hosts;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::vrrp::time::micros;
use crate::vrrp::{Action, Event, Instance, Params, ParamsError, Reason, State, Time, TrackerId};

/// The simulator's seeded PRNG (`fastrand`, wyrand): fast, good enough for loss and jitter,
/// exactly replayable from its seed.
#[derive(Clone, Debug)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// Uniform in `lo..=hi` (returns `lo` if `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0.u64(lo..=hi.max(lo))
    }

    /// True with probability `ppm / 1_000_000`.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.range(0, 999_999) < u64::from(ppm)
    }
}

/// Network conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// Loss probability per delivery, in parts per million.
    pub loss_ppm: u32,
    /// Minimum one-way delay.
    pub delay_min: Duration,
    /// Maximum one-way delay.
    pub delay_max: Duration,
}

impl Net {
    /// No loss, zero delay.
    pub const PERFECT: Net = Net {
        loss_ppm: 0,
        delay_min: Duration::ZERO,
        delay_max: Duration::ZERO,
    };
}

/// Something that happens to the simulated world at a scheduled time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`Event::Startup`] on a node (ignored by the instance unless in Initialize).
    Start(usize),
    /// The node stops silently (kill -9, power loss). Its state is frozen and it hears nothing.
    Crash(usize),
    /// A crashed (or running) node is replaced by a fresh instance and started.
    Restart(usize),
    /// Graceful [`Event::Shutdown`] (priority-0 advert from Master).
    Shutdown(usize),
    /// [`Event::TrackerChanged`].
    Tracker {
        /// Node.
        node: usize,
        /// Tracker id.
        id: TrackerId,
        /// New status.
        up: bool,
    },
    /// Partition the segment: nodes in different groups cannot hear each other; nodes in no
    /// group are each isolated.
    Partition(Vec<Vec<usize>>),
    /// Remove any partition.
    Heal,
    /// Change loss and delay from now on.
    SetNet(Net),
}

/// A complete, replayable description of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// PRNG seed for loss and delay.
    pub seed: u64,
    /// One entry per node.
    pub nodes: Vec<Params>,
    /// Initial network conditions.
    pub net: Net,
    /// Scheduled operations.
    pub ops: Vec<(Time, Op)>,
    /// Run until this time.
    pub until: Time,
}

/// What a trace entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// An event handed to a node's instance.
    Vrrp(Event),
    /// A scheduled operation applied.
    Op(Op),
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// When.
    pub at: Time,
    /// Which node, if the entry concerns one.
    pub node: Option<usize>,
    /// What happened.
    pub event: TraceEvent,
    /// Actions returned by the instance.
    pub actions: Vec<Action>,
    /// The node's state afterwards.
    pub state: Option<State>,
}

/// A state transition seen in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionRecord {
    /// When.
    pub at: Time,
    /// Node.
    pub node: usize,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
    /// Why.
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Deliver {
        from: usize,
        to: usize,
        event: Event,
    },
    Timer {
        node: usize,
        epoch: u64,
    },
    Op(Op),
}

#[derive(Clone, Debug)]
struct Queued {
    at: Time,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Clone, Debug)]
struct Node {
    inst: Instance,
    alive: bool,
    /// Incremented on crash/restart so timers of an earlier incarnation are dropped.
    epoch: u64,
}

/// The simulator.
#[derive(Clone, Debug)]
pub struct Sim {
    seed: u64,
    now: Time,
    seq: u64,
    rng: Rng,
    net: Net,
    nodes: Vec<Node>,
    /// Partition group per node; `None` = no partition.
    groups: Option<Vec<usize>>,
    queue: BinaryHeap<Reverse<Queued>>,
    /// Latest scheduled delivery per link `from * n + to` (FIFO links).
    link_last: Vec<Time>,
    trace: Vec<TraceEntry>,
    transitions: Vec<TransitionRecord>,
}

impl Sim {
    /// A simulator at time zero with every node in Initialize (not started).
    pub fn new(seed: u64, nodes: Vec<Params>, net: Net) -> Result<Sim, ParamsError> {
        let nodes = nodes
            .into_iter()
            .map(|p| {
                Ok(Node {
                    inst: Instance::new(p)?,
                    alive: true,
                    epoch: 0,
                })
            })
            .collect::<Result<Vec<_>, ParamsError>>()?;
        let n = nodes.len();
        Ok(Sim {
            seed,
            now: Time::ZERO,
            seq: 0,
            rng: Rng::new(seed),
            net,
            nodes,
            groups: None,
            queue: BinaryHeap::new(),
            link_last: vec![Time::ZERO; n * n],
            trace: Vec::new(),
            transitions: Vec::new(),
        })
    }

    /// Builds the simulator for `scenario`, schedules its operations and runs it to its end.
    pub fn replay(scenario: &Scenario) -> Result<Sim, ParamsError> {
        let mut sim = Sim::new(scenario.seed, scenario.nodes.clone(), scenario.net)?;
        for (at, op) in &scenario.ops {
            sim.schedule(*at, op.clone());
        }
        sim.run_until(scenario.until);
        Ok(sim)
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node's instance (frozen while crashed).
    pub fn node(&self, i: usize) -> &Instance {
        &self.nodes[i].inst
    }

    /// Whether a node is running (not crashed).
    pub fn alive(&self, i: usize) -> bool {
        self.nodes[i].alive
    }

    /// Running nodes currently in Master.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].inst.state() == State::Master)
            .collect()
    }

    /// All transitions so far.
    pub fn transitions(&self) -> &[TransitionRecord] {
        &self.transitions
    }

    /// Transitions strictly after `t`.
    pub fn transitions_after(&self, t: Time) -> Vec<TransitionRecord> {
        self.transitions
            .iter()
            .filter(|r| r.at > t)
            .copied()
            .collect()
    }

    /// The full trace.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// Schedules an operation (at `now` if `at` is in the past).
    pub fn schedule(&mut self, at: Time, op: Op) {
        let at = at.max(self.now);
        self.push(at, Kind::Op(op));
    }

    /// Processes every queued event up to and including `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        while let Some(Reverse(q)) = self.queue.peek() {
            if q.at > t {
                break;
            }
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            self.now = q.at;
            self.process(q.kind);
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// The transitions, one per line.
    pub fn format_transitions(&self) -> String {
        let mut s = String::new();
        for r in &self.transitions {
            let _ = writeln!(
                s,
                "{} n{} {:?} -> {:?} ({:?})",
                r.at, r.node, r.from, r.to, r.reason
            );
        }
        s
    }

    /// The whole trace, one line per entry.
    pub fn format_trace(&self) -> String {
        let mut s = String::new();
        for e in &self.trace {
            let node = e.node.map_or_else(|| "--".to_string(), |n| format!("n{n}"));
            let _ = write!(s, "{} {node} {:?}", e.at, e.event);
            if let Some(st) = e.state {
                let _ = write!(s, " => {st:?}");
            }
            if !e.actions.is_empty() {
                let _ = write!(s, " {:?}", e.actions);
            }
            s.push('\n');
        }
        s
    }

    /// A failure report: seed, node parameters summary, transitions and the trace (the last
    /// `tail` entries, or all with `None`).
    pub fn report(&self, tail: Option<usize>) -> String {
        let mut s = format!("sim rng seed={:#x} now={}\nnodes:\n", self.seed, self.now);
        for (i, n) in self.nodes.iter().enumerate() {
            let p = n.inst.params();
            let _ = writeln!(
                s,
                "  n{i}: {} {:?} prio={} eff={} int={:?} init={:?} preempt={} alive={} state={:?}",
                p.primary_address,
                p.version,
                p.priority,
                n.inst.effective_priority(),
                p.advert_interval,
                p.initial_state,
                p.effective_preempt(),
                n.alive,
                n.inst.state()
            );
        }
        s.push_str("transitions:\n");
        s.push_str(&self.format_transitions());
        let trace = self.format_trace();
        let lines: Vec<&str> = trace.lines().collect();
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        let _ = writeln!(s, "trace (last {} of {}):", lines.len() - skip, lines.len());
        for l in &lines[skip..] {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    // ---- internals -----------------------------------------------------------------------

    fn push(&mut self, at: Time, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            kind,
        }));
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g[a] == g[b])
    }

    fn process(&mut self, kind: Kind) {
        match kind {
            Kind::Deliver { from, to, event } => {
                if self.nodes[to].alive && self.connected(from, to) {
                    self.feed(to, event);
                }
            }
            Kind::Timer { node, epoch } => {
                if self.nodes[node].alive && self.nodes[node].epoch == epoch {
                    self.feed(node, Event::TimerFired);
                }
            }
            Kind::Op(op) => self.apply(op),
        }
    }

    fn apply(&mut self, op: Op) {
        let record = |sim: &mut Sim, node: Option<usize>| {
            let state = node.map(|n| sim.nodes[n].inst.state());
            sim.trace.push(TraceEntry {
                at: sim.now,
                node,
                event: TraceEvent::Op(op.clone()),
                actions: Vec::new(),
                state,
            });
        };
        match &op {
            Op::Start(n) => {
                if self.nodes[*n].alive {
                    self.feed(*n, Event::Startup);
                }
            }
            Op::Shutdown(n) => {
                if self.nodes[*n].alive {
                    self.feed(*n, Event::Shutdown);
                }
            }
            Op::Tracker { node, id, up } => {
                if self.nodes[*node].alive {
                    self.feed(*node, Event::TrackerChanged { id: *id, up: *up });
                }
            }
            Op::Crash(n) => {
                let node = &mut self.nodes[*n];
                node.alive = false;
                node.epoch += 1;
                record(self, Some(*n));
            }
            Op::Restart(n) => {
                let params = self.nodes[*n].inst.params().clone();
                let node = &mut self.nodes[*n];
                // Params were validated when the node was created.
                if let Ok(inst) = Instance::new(params) {
                    node.inst = inst;
                }
                node.alive = true;
                node.epoch += 1;
                record(self, Some(*n));
                self.feed(*n, Event::Startup);
            }
            Op::Partition(groups) => {
                let n = self.nodes.len();
                // Nodes in no group get a group of their own.
                let mut g: Vec<usize> = (0..n).map(|i| groups.len() + i).collect();
                for (gi, members) in groups.iter().enumerate() {
                    for &m in members {
                        if m < n {
                            g[m] = gi;
                        }
                    }
                }
                self.groups = Some(g);
                record(self, None);
            }
            Op::Heal => {
                self.groups = None;
                record(self, None);
            }
            Op::SetNet(net) => {
                self.net = *net;
                record(self, None);
            }
        }
    }

    fn feed(&mut self, i: usize, event: Event) {
        let now = self.now;
        let actions = self.nodes[i].inst.handle(now, event);
        if actions.is_empty() && event == Event::TimerFired {
            return; // stale firing: not worth a trace line
        }
        for a in &actions {
            match *a {
                Action::SendAdvert { priority } => self.broadcast(i, priority),
                Action::ArmTimer { at } => {
                    let epoch = self.nodes[i].epoch;
                    self.push(at.max(now), Kind::Timer { node: i, epoch });
                }
                Action::StateChanged { from, to, reason } => {
                    self.transitions.push(TransitionRecord {
                        at: now,
                        node: i,
                        from,
                        to,
                        reason,
                    });
                }
                Action::CancelTimer
                | Action::AddAddresses
                | Action::RemoveAddresses
                | Action::SendGratuitous
                | Action::Notify(_) => {}
            }
        }
        let state = Some(self.nodes[i].inst.state());
        self.trace.push(TraceEntry {
            at: now,
            node: Some(i),
            event: TraceEvent::Vrrp(event),
            actions,
            state,
        });
    }

    fn broadcast(&mut self, from: usize, priority: u8) {
        let p = self.nodes[from].inst.params();
        let event = Event::AdvertReceived {
            src: p.primary_address,
            priority,
            max_advert_interval: p.advert_interval,
        };
        let (lo, hi) = (micros(self.net.delay_min), micros(self.net.delay_max));
        for to in 0..self.nodes.len() {
            if to == from || self.rng.chance_ppm(self.net.loss_ppm) {
                continue;
            }
            let delay = self.rng.range(lo, hi);
            let link = from * self.nodes.len() + to;
            let at = self.now.add_micros(delay).max(self.link_last[link]);
            self.link_last[link] = at;
            self.push(at, Kind::Deliver { from, to, event });
        }
    }
}
