//! The daemon's side of the cloud takeover: one [`CloudTakeover`] per instance with a
//! `digitalocean { }` block.
//!
//! Tasks (all on the agent's `LocalSet`):
//! - **start-up**: the droplet id from the metadata service (retried with backoff until it
//!   answers) and, concurrently, one probe of the API (`GET` the reserved IP) so a refused token
//!   or an unknown IP is reported at once. Transient probe failures are retried with backoff
//!   until the API answers once, an unknown IP (404) with a slower backoff (up to
//!   `reconcile_interval`) until it exists; after that a Backup makes no API call.
//! - **Master term**: spawned on becoming Master ([`crate::cloud::takeover::term`]), aborted the
//!   moment the instance leaves Master (and its cancel flag set first, so not even a request
//!   already scheduled can start).
//!
//! Only 401/403 block the takeover: a Backup makes no further call; a Master re-checks once per
//! `reconcile_interval` and resumes when the token is accepted again; reload (SIGHUP, which also
//! re-reads the token file) retries at once. VRRP never waits for any of this.

use std::{
    cell::{Cell, RefCell},
    net::IpAddr,
    rc::Rc,
};

use tokio::{sync::Notify, task::JoinHandle};
use tracing::{error, info, warn, Level};

use super::loglimit;
use crate::{
    cloud::{
        policy::{
            Backoff, Jitter, GONE_BASE, GONE_MAX, METADATA_BASE, METADATA_MAX, RATE_LIMIT_DEFAULT,
        },
        takeover::{self, CloudStatus, Ctx, DropletId, Fatal, Role},
        Api, ApiError, Class, DoClient, Metadata,
    },
    config::{self, DigitalOcean, TokenSource},
    state::CloudState,
    vrrp::State,
};

struct Term {
    task: JoinHandle<()>,
    cancel: Rc<Cell<bool>>,
}

/// The cloud takeover of one instance.
pub(crate) struct CloudTakeover {
    name: String,
    cfg: DigitalOcean,
    client: Option<Rc<DoClient>>,
    status: Rc<RefCell<CloudStatus>>,
    droplet: Rc<DropletId>,
    startup: Option<JoinHandle<()>>,
    term: Option<Term>,
    kick: Rc<Notify>,
    jitter: Jitter,
    /// Lower-priority adverts seen while Master with a takeover running.
    lower_adverts: Cell<u64>,
}

fn block(status: &RefCell<CloudStatus>, name: &str, f: &Fatal) {
    error!("{name}: DigitalOcean takeover STOPPED: {f}");
    status.borrow_mut().blocked = Some(f.to_string());
}

impl CloudTakeover {
    /// Sets up the client and starts the start-up task. Never fails: problems show in status.
    pub(crate) fn start(name: &str, cfg: DigitalOcean) -> Self {
        let mut t = Self {
            name: name.to_owned(),
            status: Rc::new(RefCell::new(CloudStatus::new(cfg.reserved_ip))),
            cfg,
            client: None,
            droplet: Rc::new(DropletId::default()),
            startup: None,
            term: None,
            kick: Rc::new(Notify::new()),
            jitter: Jitter::from_clock(),
            lower_adverts: Cell::new(0),
        };
        info!(
            "{}: DigitalOcean reserved IP {} (API {}, metadata {}, reconcile every {}s)",
            t.name,
            t.cfg.reserved_ip,
            t.cfg.api_url,
            t.cfg.metadata_url,
            t.cfg.reconcile_interval.as_secs()
        );
        t.connect();
        t
    }

    /// (Re)creates the client and (re)starts the start-up task.
    fn connect(&mut self) {
        if let Some(s) = self.startup.take() {
            s.abort();
        }
        let client = match DoClient::new(&self.cfg.api_url, self.cfg.reserved_ip, &self.cfg.token) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                error!("{}: {e}", self.name);
                self.status.borrow_mut().blocked = Some(e.to_string());
                self.client = None;
                return;
            }
        };
        let metadata = match Metadata::new(&self.cfg.metadata_url) {
            Ok(m) => Some(m),
            Err(e) => {
                error!("{}: {e}", self.name);
                None
            }
        };
        self.client = Some(client.clone());
        let name = self.name.clone();
        let status = self.status.clone();
        let droplet = self.droplet.clone();
        let seed = (self.jitter.unit() * u64::MAX as f64) as u64;
        let reconcile = self.cfg.reconcile_interval;
        self.startup = Some(tokio::task::spawn_local(async move {
            let meta = discover(name.clone(), metadata, status.clone(), droplet, seed);
            let probe = probe(name, client, status, seed ^ 0x5555, reconcile);
            tokio::join!(meta, probe);
        }));
    }

    /// Call on every state change of the instance.
    pub(crate) fn on_transition(&mut self, from: State, to: State) {
        if to == State::Master && from != State::Master {
            self.became_master();
        } else if from == State::Master && to != State::Master {
            self.left_master(to);
        }
    }

    fn became_master(&mut self) {
        self.cancel_term();
        let Some(client) = self.client.clone() else {
            // No client at all (a token unusable in a header): nothing can be tried until reload.
            if let Some(b) = self.status.borrow().blocked.clone() {
                error!(
                    "{}: Master, but NOT moving reserved IP {}: {b}",
                    self.name, self.cfg.reserved_ip
                );
            }
            return;
        };
        if let Some(b) = self.status.borrow().blocked.clone() {
            error!(
                "{}: Master, but the API refused the token: checking reserved IP {} once every {}s until it is accepted ({b})",
                self.name,
                self.cfg.reserved_ip,
                self.cfg.reconcile_interval.as_secs()
            );
        }
        let cancel = Rc::new(Cell::new(false));
        let ctx = Ctx {
            api: client,
            instance: self.name.clone(),
            status: self.status.clone(),
            cancel: cancel.clone(),
            jitter: Jitter::seeded((self.jitter.unit() * u64::MAX as f64) as u64),
            reconcile: self.cfg.reconcile_interval,
        };
        {
            let mut st = self.status.borrow_mut();
            st.role = Role::Assigning;
            st.api_error = None;
        }
        let task =
            tokio::task::spawn_local(takeover::term(ctx, self.droplet.clone(), self.kick.clone()));
        self.term = Some(Term { task, cancel });
    }

    fn cancel_term(&mut self) -> bool {
        match self.term.take() {
            Some(t) => {
                // The flag first: nothing scheduled can start a request after this point.
                t.cancel.set(true);
                t.task.abort();
                !t.task.is_finished()
            }
            None => false,
        }
    }

    fn left_master(&mut self, to: State) {
        if self.cancel_term() {
            // Once per transition, which a peer can provoke: rate limited like transitions.
            loglimit::log(
                Level::INFO,
                &self.name,
                None,
                loglimit::TAKEOVER_CANCELLED,
                || {
                    format!(
                        "{}: left Master ({to:?}): reserved IP takeover cancelled; no further API calls",
                        self.name
                    )
                },
            );
        }
        let mut st = self.status.borrow_mut();
        st.role = Role::Backup;
        st.api_error = None;
    }

    /// Call for every accepted advert: a lower-priority one while Master (a peer that also
    /// thinks it is Master, e.g. after a healed split brain) triggers a reconcile at once.
    pub(crate) fn on_advert(&self, state: State, my_priority: u8, src: IpAddr, priority: u8) {
        if state == State::Master && priority < my_priority && self.term.is_some() {
            self.lower_adverts.set(self.lower_adverts.get() + 1);
            // Any host on the segment can send these (PASS travels in clear): rate limited per
            // peer, the count is in status (`cloud.lower_priority_adverts`).
            loglimit::log(
                Level::INFO,
                &self.name,
                Some(src),
                loglimit::LOWER_PRIORITY_ADVERT,
                || {
                    format!(
                        "{}: advert from {src} with lower priority {priority} while Master: checking reserved IP {} now",
                        self.name, self.cfg.reserved_ip
                    )
                },
            );
            self.kick.notify_one();
        }
    }

    /// SIGHUP: re-reads the token file, clears a block, probes again, and restarts the takeover
    /// if the instance is Master.
    pub(crate) fn reload(&mut self, state: State) {
        if let (TokenSource::File(path), Some(_)) = (&self.cfg.token_source, &self.cfg.token_file) {
            match config::read_token_file(path) {
                Ok(t) => self.cfg.token = t,
                Err(e) => warn!("{}: reload: {e}; keeping the previous token", self.name),
            }
        }
        let was_blocked = self.status.borrow_mut().blocked.take();
        if let Some(b) = was_blocked {
            info!(
                "{}: reload: retrying the DigitalOcean takeover (was: {b})",
                self.name
            );
        }
        {
            let mut st = self.status.borrow_mut();
            st.probed = false;
            st.api_error = None;
        }
        self.cancel_term();
        self.connect();
        if state == State::Master {
            self.became_master();
        }
    }

    /// Stops every task (agent shutdown). The IP stays where it is: the next Master moves it.
    pub(crate) fn shutdown(&mut self) {
        self.cancel_term();
        if let Some(s) = self.startup.take() {
            s.abort();
        }
    }

    /// The `cloud` object of `xvrrp status`.
    pub(crate) fn snapshot(&self) -> CloudState {
        let st = self.status.borrow();
        CloudState {
            status: st.clone(),
            state: st.state(),
            api_url: self.cfg.api_url.clone(),
            reconcile_interval_s: self.cfg.reconcile_interval.as_secs(),
            takeover_running: self.term.is_some(),
            lower_priority_adverts: self.lower_adverts.get(),
        }
    }
}

/// The droplet id from the metadata service, retried with backoff until it answers.
async fn discover(
    name: String,
    metadata: Option<Metadata>,
    status: Rc<RefCell<CloudStatus>>,
    droplet: Rc<DropletId>,
    seed: u64,
) {
    if droplet.get().is_some() {
        return;
    }
    let Some(metadata) = metadata else {
        status.borrow_mut().metadata_error = Some("bad metadata_url".to_owned());
        return;
    };
    let mut backoff = Backoff::new(METADATA_BASE, METADATA_MAX, Jitter::seeded(seed));
    loop {
        match metadata.droplet_id().await {
            Ok(id) => {
                info!("{name}: this is droplet {id} (metadata service)");
                {
                    let mut st = status.borrow_mut();
                    st.droplet_id = Some(id);
                    st.metadata_error = None;
                }
                droplet.set(id);
                return;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                if backoff.attempts() <= 3 || backoff.attempts().is_power_of_two() {
                    warn!(
                        "{name}: cannot get the droplet id: {e}; retrying in {:.1}s (VRRP runs meanwhile)",
                        wait.as_secs_f64()
                    );
                }
                status.borrow_mut().metadata_error = Some(e.to_string());
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The start-up probe: one `GET` of the reserved IP; transient failures are retried with
/// backoff until the API answers once; an unknown IP (404) is reported and read again, at most
/// once per `reconcile_interval`, until it exists; 401/403 block (see the module docs).
async fn probe(
    name: String,
    client: Rc<DoClient>,
    status: Rc<RefCell<CloudStatus>>,
    seed: u64,
    reconcile: std::time::Duration,
) {
    let mut backoff = Backoff::api(Jitter::seeded(seed));
    let mut gone = Backoff::new(GONE_BASE, GONE_MAX, Jitter::seeded(seed ^ 0xa5a5));
    loop {
        status.borrow_mut().api_calls += 1;
        let r: Result<_, ApiError> = client.get_ip().await;
        match r {
            Ok(s) => {
                let holder = s
                    .holder
                    .map_or_else(|| "no droplet".to_owned(), |h| format!("droplet {h}"));
                info!(
                    "{name}: DigitalOcean API ok: reserved IP {} points to {holder}",
                    status.borrow().reserved_ip
                );
                let mut st = status.borrow_mut();
                st.probed = true;
                if st.role != Role::Assigning {
                    st.seen(s.holder);
                } else {
                    st.holder = s.holder;
                }
                return;
            }
            Err(e) => match e.class() {
                Class::Auth => {
                    block(&status, &name, &Fatal::Auth(e));
                    return;
                }
                Class::NotFound => {
                    // Not a reason to give up (issue 11): reported loudly, read again slowly.
                    let wait = gone.next_delay().min(reconcile.max(GONE_BASE));
                    error!(
                        "{name}: reserved IP {} does not exist for the API ({e}); is reserved_ip right? Checking again in {:.0}s",
                        status.borrow().reserved_ip,
                        wait.as_secs_f64()
                    );
                    {
                        let mut st = status.borrow_mut();
                        if st.role != Role::Assigning && st.role != Role::Verified {
                            st.api_error = Some(format!(
                                "the reserved IP is unknown to the API ({e}); still trying"
                            ));
                        }
                    }
                    tokio::time::sleep(wait).await;
                }
                Class::RateLimited(w) => {
                    let w = w.unwrap_or(RATE_LIMIT_DEFAULT);
                    warn!("{name}: start-up probe: {e}; retrying in {}s", w.as_secs());
                    status.borrow_mut().api_error = Some(e.to_string());
                    tokio::time::sleep(w).await;
                }
                _ => {
                    let wait = backoff.next_delay();
                    warn!(
                        "{name}: start-up probe of the DigitalOcean API failed: {e}; retrying in {:.1}s (VRRP runs meanwhile)",
                        wait.as_secs_f64()
                    );
                    // A Master's takeover reports its own errors; don't overwrite its progress.
                    {
                        let mut st = status.borrow_mut();
                        if st.role != Role::Assigning && st.role != Role::Verified {
                            st.api_error = Some(e.to_string());
                        }
                    }
                    tokio::time::sleep(wait).await;
                }
            },
        }
    }
}
