//! The takeover of one reserved IP while the instance is Master: read, assign, follow, verify,
//! then reconcile. Runs as one task per Master term; the daemon aborts it the moment the instance
//! leaves Master (see `daemon::takeover`). Every API call goes through [`Ctx::call`], which also
//! refuses to start a request once the term is cancelled.
//!
//! The retry rules (issue 5, item 3; issue 11, item 5):
//! - read first; an IP already pointing here is success (assigning to the holder is a 422);
//! - POST the assign, follow the action to `completed` (an action that answers 404 right after
//!   the POST falls back to reading the IP), then read the IP again to verify;
//! - timeouts, transport errors and 5xx: exponential backoff with jitter ([`Backoff::api`]);
//! - 429: wait for `retry-after` / `ratelimit-reset`;
//! - 422 "pending event": follow the IP's in-progress action if there is one, else wait
//!   ([`PENDING_BASE`]..[`PENDING_MAX`]), then retry;
//! - 404 from a sub-resource (the action list, an action, the actions POST): an ambiguous
//!   answer, never a reason to give up. The IP itself is read again at once; if it exists the
//!   effort goes on with backoff;
//! - 404 for the IP itself (deleted, or a wrong `reserved_ip`): reported loudly (ERROR log,
//!   `degraded` status) and read again with backoff from [`GONE_BASE`] up to [`GONE_MAX`] or
//!   `reconcile_interval`, whichever is shorter, for as long as the instance is Master. Chosen
//!   over stopping: an IP re-created or a transient 404 from the API then heals by itself,
//!   and a missing IP costs at most one request per interval;
//! - 401 / 403 only: the effort stops ([`Fatal::Auth`]): no retries with backoff. While Master,
//!   [`term`] still re-checks once every `reconcile_interval` (one read) and resumes if the token
//!   is accepted again; reload (SIGHUP) retries at once. No error ends the periodic re-check.

use std::{
    cell::{Cell, RefCell},
    fmt,
    future::Future,
    net::Ipv4Addr,
    rc::Rc,
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};
use tracing::{debug, error, info, warn};

pub use crate::state::{CloudStatus, Role};

use super::{
    client::{ActionStatus, Api},
    error::{ApiError, Class},
    policy::{
        next_poll, Backoff, Jitter, ACTION_TIMEOUT, GONE_BASE, GONE_MAX, KICK_MIN_GAP,
        PENDING_BASE, PENDING_MAX, POLL_FIRST, RATE_LIMIT_DEFAULT,
    },
};

impl CloudStatus {
    /// Records a successful read of the IP.
    pub fn seen(&mut self, holder: Option<u64>) {
        self.holder = holder;
        self.checked_at = Some(crate::logging::utc_now());
        self.api_error = None;
    }
}

/// This droplet's id, filled in by the metadata task; the takeover waits for it.
#[derive(Debug, Default)]
pub struct DropletId {
    id: Cell<Option<u64>>,
    changed: Notify,
}

impl DropletId {
    /// Publishes the id.
    pub fn set(&self, id: u64) {
        self.id.set(Some(id));
        self.changed.notify_waiters();
    }

    /// The id, if known.
    pub fn get(&self) -> Option<u64> {
        self.id.get()
    }

    /// Waits until the id is known.
    pub async fn wait(&self) -> u64 {
        loop {
            let changed = self.changed.notified();
            if let Some(id) = self.id.get() {
                return id;
            }
            changed.await;
        }
    }
}

/// Why the takeover's effort stopped (until the token is accepted again), or was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// 401/403: the token is refused.
    #[error("the API refused the token ({0}); fix the token, then reload (SIGHUP) or restart")]
    Auth(ApiError),
    /// The term was cancelled (the instance left Master); no request was started.
    #[error("cancelled")]
    Cancelled,
}

/// What [`ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The IP already pointed here: nothing was assigned.
    AlreadyHere,
    /// The IP was moved here (from the holder seen first) and verified.
    Moved {
        /// The holder before.
        from: Option<u64>,
    },
}

/// Why a check runs (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The instance became Master.
    BecameMaster,
    /// `reconcile_interval` elapsed.
    Periodic,
    /// A lower-priority advert arrived while Master (a healed split brain).
    LowerPriorityAdvert,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::BecameMaster => "became Master",
            Why::Periodic => "periodic reconcile",
            Why::LowerPriorityAdvert => "a lower-priority Master was seen (healed split brain?)",
        })
    }
}

/// What a takeover works with.
pub struct Ctx<A> {
    /// The API.
    pub api: A,
    /// Instance name (log prefix).
    pub instance: String,
    /// Shared status.
    pub status: Rc<RefCell<CloudStatus>>,
    /// Set by the daemon when the term is cancelled; checked before every request.
    pub cancel: Rc<Cell<bool>>,
    /// Jitter source.
    pub jitter: Jitter,
    /// `reconcile_interval`: the period of the re-check while Master, and the longest wait
    /// between reads of a reserved IP the API says does not exist.
    pub reconcile: Duration,
}

/// The backoffs of one [`ensure`].
struct Waits {
    /// Transient errors.
    api: Backoff,
    /// 422 "pending event".
    pending: Backoff,
    /// The reserved IP answers 404.
    gone: Backoff,
}

enum Follow {
    Completed,
    Failed(&'static str),
}

/// What a read of the IP after a sub-resource's 404 found.
enum Reread {
    /// The IP exists (the answer is recorded in the status).
    Exists,
    /// The IP itself answers 404 (reported loudly and waited for), or the read failed (waited
    /// for with backoff).
    Failed,
}

impl<A: Api> Ctx<A> {
    fn ip(&self) -> Ipv4Addr {
        self.status.borrow().reserved_ip
    }

    fn backoff(&mut self, base: Duration, max: Duration) -> Backoff {
        Backoff::new(
            base,
            max,
            Jitter::seeded((self.jitter.unit() * u64::MAX as f64) as u64),
        )
    }

    /// Runs one API request unless the term is cancelled (then no request starts).
    pub async fn call<T>(
        &self,
        req: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Result<T, ApiError>, Fatal> {
        if self.cancel.get() {
            return Err(Fatal::Cancelled);
        }
        self.status.borrow_mut().api_calls += 1;
        Ok(req.await)
    }

    /// Waits after a failed request as its class asks; `Err` for the errors that stop.
    async fn pause(&self, e: ApiError, backoff: &mut Backoff) -> Result<(), Fatal> {
        let wait = match e.class() {
            Class::Auth => return Err(Fatal::Auth(e)),
            Class::RateLimited(w) => w.unwrap_or(RATE_LIMIT_DEFAULT),
            _ => backoff.next_delay(),
        };
        warn!(
            "{}: reserved IP {}: {e}; retrying in {:.1}s",
            self.instance,
            self.ip(),
            wait.as_secs_f64()
        );
        self.status.borrow_mut().api_error = Some(e.to_string());
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The reserved IP itself answered 404: reports it loudly and waits (`gone` backoff, never
    /// longer than `reconcile_interval`); the caller reads it again afterwards.
    async fn ip_gone(&self, e: ApiError, gone: &mut Backoff) {
        let wait = gone.next_delay().min(self.reconcile.max(GONE_BASE));
        error!(
            "{}: reserved IP {} does not exist for the API ({e}); is reserved_ip right? \
             Not giving up: reading it again in {:.1}s",
            self.instance,
            self.ip(),
            wait.as_secs_f64()
        );
        self.status.borrow_mut().api_error = Some(format!(
            "the reserved IP is unknown to the API ({e}); still trying"
        ));
        tokio::time::sleep(wait).await;
    }

    /// After a 404 from a sub-resource: reads the IP itself at once.
    async fn reread(&self, sub: &ApiError, w: &mut Waits) -> Result<Reread, Fatal> {
        warn!(
            "{}: reserved IP {}: {sub}; reading the IP again",
            self.instance,
            self.ip()
        );
        match self.call(self.api.get_ip()).await? {
            Ok(s) => {
                self.status.borrow_mut().seen(s.holder);
                w.gone.reset();
                Ok(Reread::Exists)
            }
            Err(e) if e.class() == Class::NotFound => {
                self.ip_gone(e, &mut w.gone).await;
                Ok(Reread::Failed)
            }
            Err(e) => {
                self.pause(e, &mut w.api).await?;
                Ok(Reread::Failed)
            }
        }
    }

    /// Follows action `id` until it completes, errors, or [`ACTION_TIMEOUT`]. `me`: when the
    /// action answers 404 (just created), the IP is read instead and pointing to `me` counts as
    /// completed.
    async fn follow(&mut self, id: u64, me: Option<u64>) -> Result<Follow, Fatal> {
        let start = Instant::now();
        let mut gap = POLL_FIRST;
        let mut backoff = self.backoff(PENDING_BASE, PENDING_MAX);
        loop {
            tokio::time::sleep(gap).await;
            gap = next_poll(gap);
            if start.elapsed() > ACTION_TIMEOUT {
                return Ok(Follow::Failed("the action did not complete in time"));
            }
            match self.call(self.api.get_action(id)).await? {
                Ok(a) => match a.status {
                    ActionStatus::Completed => return Ok(Follow::Completed),
                    ActionStatus::Errored => return Ok(Follow::Failed("the action errored")),
                    ActionStatus::InProgress | ActionStatus::Other(_) => {}
                },
                Err(e) if e.class() == Class::NotFound => {
                    debug!(
                        "{}: action {id} not found (yet); reading the IP instead",
                        self.instance
                    );
                    match self.call(self.api.get_ip()).await? {
                        Ok(s) => {
                            self.status.borrow_mut().seen(s.holder);
                            if me.is_some() && s.holder == me && !s.locked {
                                return Ok(Follow::Completed);
                            }
                            // Someone else's action we cannot see, and the IP is no longer
                            // locked: nothing left to wait for.
                            if me.is_none() && !s.locked {
                                return Ok(Follow::Completed);
                            }
                        }
                        // The IP itself is gone: back to `ensure`, which reports and retries.
                        Err(e) if e.class() == Class::NotFound => {
                            return Ok(Follow::Failed("the reserved IP answers 404"))
                        }
                        Err(e) => self.pause_in_follow(e, &mut backoff).await?,
                    }
                }
                Err(e) => self.pause_in_follow(e, &mut backoff).await?,
            }
        }
    }

    async fn pause_in_follow(&self, e: ApiError, backoff: &mut Backoff) -> Result<(), Fatal> {
        match e.class() {
            Class::Auth | Class::RateLimited(_) => self.pause(e, backoff).await,
            // Poll gaps already grow; just note it.
            _ => {
                warn!("{}: following the action: {e}", self.instance);
                Ok(())
            }
        }
    }

    /// After a 422 "pending event": follows the IP's in-progress action if the API lists one,
    /// else waits with `pending` backoff. A 404 for the list re-reads the IP and waits.
    async fn wait_pending(&mut self, e: ApiError, w: &mut Waits) -> Result<(), Fatal> {
        info!(
            "{}: reserved IP {}: {e}; waiting for it",
            self.instance,
            self.ip()
        );
        self.status.borrow_mut().api_error = Some(e.to_string());
        match self.call(self.api.pending_actions()).await? {
            Ok(list) => match list.first() {
                Some(a) => {
                    let id = a.id;
                    debug!("{}: following pending action {id}", self.instance);
                    self.follow(id, None).await?;
                }
                None => tokio::time::sleep(w.pending.next_delay()).await,
            },
            Err(e) if e.class() == Class::NotFound => {
                if let Reread::Exists = self.reread(&e, w).await? {
                    self.status.borrow_mut().api_error = Some(e.to_string());
                    tokio::time::sleep(w.pending.next_delay()).await;
                }
            }
            Err(e) => self.pause(e, &mut w.pending).await?,
        }
        Ok(())
    }
}

/// Makes the reserved IP point to droplet `me`: read; if elsewhere, assign, follow, verify.
/// Retries until done; returns only on success, on 401/403 ([`Fatal::Auth`]) or when cancelled.
pub async fn ensure<A: Api>(ctx: &mut Ctx<A>, me: u64) -> Result<Outcome, Fatal> {
    let mut w = Waits {
        api: ctx.backoff(super::policy::BACKOFF_BASE, super::policy::BACKOFF_MAX),
        pending: ctx.backoff(PENDING_BASE, PENDING_MAX),
        gone: ctx.backoff(GONE_BASE, GONE_MAX),
    };
    let mut first_holder: Option<Option<u64>> = None;
    let mut completed = false;
    loop {
        let st = match ctx.call(ctx.api.get_ip()).await? {
            Ok(s) => s,
            Err(e) if e.class() == Class::NotFound => {
                ctx.ip_gone(e, &mut w.gone).await;
                continue;
            }
            Err(e) => {
                ctx.pause(e, &mut w.api).await?;
                continue;
            }
        };
        w.gone.reset();
        ctx.status.borrow_mut().seen(st.holder);
        let from = *first_holder.get_or_insert(st.holder);
        if st.holder == Some(me) {
            return Ok(if completed {
                Outcome::Moved { from }
            } else {
                Outcome::AlreadyHere
            });
        }
        if completed {
            // The action completed but the IP points elsewhere: someone moved it meanwhile.
            warn!(
                "{}: reserved IP {} points to {:?} after our assign completed; assigning again",
                ctx.instance,
                ctx.ip(),
                st.holder
            );
            completed = false;
            tokio::time::sleep(w.api.next_delay()).await;
            continue;
        }
        ctx.status.borrow_mut().role = Role::Assigning;
        let action = match ctx.call(ctx.api.assign(me)).await? {
            Ok(a) => a,
            Err(e) => {
                match e.class() {
                    Class::PendingEvent => ctx.wait_pending(e, &mut w).await?,
                    Class::NotFound => {
                        // The actions collection answered 404: read the IP; if it exists, go
                        // on after the backoff (and if not, `reread` reported and waited).
                        if let Reread::Exists = ctx.reread(&e, &mut w).await? {
                            ctx.pause(e, &mut w.api).await?;
                        }
                    }
                    // 422 "already assigned": ours already (read again), or this droplet holds
                    // another IP. Anything else: backoff.
                    _ => ctx.pause(e, &mut w.api).await?,
                }
                continue;
            }
        };
        ctx.status.borrow_mut().assigns += 1;
        info!(
            "{}: assigning reserved IP {} to this droplet ({me}), action {}",
            ctx.instance,
            ctx.ip(),
            action.id
        );
        match ctx.follow(action.id, Some(me)).await? {
            Follow::Completed => {
                completed = true;
                w.api.reset();
            }
            Follow::Failed(why) => {
                warn!(
                    "{}: action {}: {why}; starting over",
                    ctx.instance, action.id
                );
                tokio::time::sleep(w.api.next_delay()).await;
            }
        }
    }
}

/// Waits for the next check: `reconcile` elapsed, or a kick (spaced by [`KICK_MIN_GAP`]).
async fn next_check(reconcile: Duration, kick: &Notify) -> Why {
    let last = Instant::now();
    let why = tokio::select! {
        () = tokio::time::sleep(reconcile) => Why::Periodic,
        () = kick.notified() => Why::LowerPriorityAdvert,
    };
    let since = last.elapsed();
    if why == Why::LowerPriorityAdvert && since < KICK_MIN_GAP {
        tokio::time::sleep(KICK_MIN_GAP - since).await;
    }
    why
}

/// While the token is refused: one read of the IP. `true` when the API took the token again
/// (any answer but 401/403), which clears the block.
async fn recheck_token<A: Api>(ctx: &Ctx<A>) -> Result<bool, Fatal> {
    match ctx.call(ctx.api.get_ip()).await? {
        Err(e) if e.class() == Class::Auth => {
            warn!(
                "{}: reserved IP {}: the API still refuses the token ({e}); checking again in {}s \
                 (reload with SIGHUP after fixing it)",
                ctx.instance,
                ctx.ip(),
                ctx.reconcile.as_secs()
            );
            ctx.status.borrow_mut().blocked = Some(Fatal::Auth(e).to_string());
            Ok(false)
        }
        r => {
            if let Ok(s) = r {
                ctx.status.borrow_mut().seen(s.holder);
            }
            info!(
                "{}: the API accepts the token again; resuming the takeover of reserved IP {}",
                ctx.instance,
                ctx.ip()
            );
            ctx.status.borrow_mut().blocked = None;
            Ok(true)
        }
    }
}

/// One Master term: waits for the droplet id, makes the IP point here, then reconciles every
/// `reconcile_interval` and whenever `kick` is notified. Never ends by itself (the daemon aborts
/// it when the instance leaves Master): after a 401/403 the effort stops and the term re-checks
/// once per `reconcile_interval` until the token is accepted again (no retry storm, no give-up).
/// Returns only when the cancel flag stopped a request.
pub async fn term<A: Api>(mut ctx: Ctx<A>, droplet: Rc<DropletId>, kick: Rc<Notify>) {
    let began = Instant::now();
    ctx.status.borrow_mut().role = Role::Assigning;
    let me = droplet.wait().await;
    ctx.status.borrow_mut().droplet_id = Some(me);
    let reconcile = ctx.reconcile;
    let mut why = Why::BecameMaster;
    loop {
        // Refused token (by this term or by the start-up probe): one read per interval.
        if ctx.status.borrow().blocked.is_some() {
            match recheck_token(&ctx).await {
                Ok(true) => {}
                Ok(false) => {
                    why = next_check(reconcile, &kick).await;
                    continue;
                }
                Err(_) => return,
            }
        }
        let ip = ctx.ip();
        match ensure(&mut ctx, me).await {
            Ok(Outcome::AlreadyHere) => {
                if why == Why::BecameMaster {
                    info!(
                        "{}: reserved IP {ip} already points to this droplet ({me})",
                        ctx.instance
                    );
                } else {
                    debug!(
                        "{}: reserved IP {ip} still points here ({why})",
                        ctx.instance
                    );
                }
            }
            Ok(Outcome::Moved { from }) => {
                let from = from.map_or_else(|| "no droplet".to_owned(), |h| format!("droplet {h}"));
                ctx.status.borrow_mut().moves += 1;
                if why == Why::BecameMaster {
                    info!(
                        "{}: reserved IP {ip} moved from {from} to this droplet ({me}) in {} ms",
                        ctx.instance,
                        began.elapsed().as_millis()
                    );
                } else {
                    warn!(
                        "{}: reserved IP {ip} pointed to {from} while this node is Master ({why}); took it back",
                        ctx.instance
                    );
                }
            }
            Err(f @ Fatal::Auth(_)) => {
                error!(
                    "{}: DigitalOcean takeover STOPPED: {f}; checking once every {}s while Master",
                    ctx.instance,
                    reconcile.as_secs()
                );
                ctx.status.borrow_mut().blocked = Some(f.to_string());
                why = next_check(reconcile, &kick).await;
                continue;
            }
            Err(Fatal::Cancelled) => return,
        }
        {
            let mut st = ctx.status.borrow_mut();
            st.role = Role::Verified;
            st.api_error = None;
            if why == Why::BecameMaster {
                st.last_takeover_ms = Some(began.elapsed().as_millis() as u64);
            }
        }
        why = next_check(reconcile, &kick).await;
    }
}

#[cfg(test)]
mod tests;
