//! Unit tests for `cloud::takeover`.

#![allow(clippy::unwrap_used, reason = "tests")]
use std::collections::VecDeque;

use super::*;
use crate::cloud::{
    client::{ActionState, IpState},
    policy::{max_attempts_within, API_TIMEOUT},
};

const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const ME: u64 = 2;
const OTHER: u64 = 1;

/// A scripted API in virtual time.
#[derive(Default)]
struct Fake {
    holder: Cell<Option<u64>>,
    /// The next calls (of any kind) fail with these.
    faults: RefCell<VecDeque<ApiError>>,
    /// The next N assigns answer 422 pending event.
    pending_posts: Cell<u32>,
    /// In-progress actions listed by `pending_actions` (their polls complete at once).
    listed: RefCell<Vec<u64>>,
    /// Polls answering in-progress before an action completes.
    polls: Cell<u32>,
    /// Polls answering 404 first.
    action_404: Cell<u32>,
    /// `pending_actions` calls answering 404 first.
    list_404: Cell<u32>,
    /// `get_ip` answers 404 while set (the IP does not exist).
    gone: Cell<bool>,
    /// Assign POSTs answering 404 first.
    post_404: Cell<u32>,
    target: Cell<Option<u64>>,
    /// (virtual time, call).
    log: RefCell<Vec<(Duration, &'static str)>>,
    start: Cell<Option<Instant>>,
}

fn status_err(status: u16, message: &str, wait: Option<Duration>) -> ApiError {
    ApiError::Status {
        what: "x",
        status,
        id: "e".into(),
        message: message.into(),
        request_id: None,
        wait,
    }
}

impl Fake {
    fn new(holder: Option<u64>) -> Rc<Self> {
        let f = Rc::new(Self::default());
        f.holder.set(holder);
        f.start.set(Some(Instant::now()));
        f
    }
    fn enter(&self, what: &'static str) -> Result<(), ApiError> {
        let t = self.start.get().map_or(Duration::ZERO, |s| s.elapsed());
        self.log.borrow_mut().push((t, what));
        match self.faults.borrow_mut().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn calls(&self, what: &str) -> Vec<Duration> {
        self.log
            .borrow()
            .iter()
            .filter(|(_, w)| *w == what)
            .map(|(t, _)| *t)
            .collect()
    }
    fn total(&self) -> usize {
        self.log.borrow().len()
    }
}

impl Api for Fake {
    async fn get_ip(&self) -> Result<IpState, ApiError> {
        self.enter("get_ip")?;
        if self.gone.get() {
            return Err(status_err(
                404,
                "The resource you requested could not be found.",
                None,
            ));
        }
        Ok(IpState {
            holder: self.holder.get(),
            locked: self.target.get().is_some(),
        })
    }
    async fn assign(&self, droplet: u64) -> Result<ActionState, ApiError> {
        self.enter("assign")?;
        if self.post_404.get() > 0 {
            self.post_404.set(self.post_404.get() - 1);
            return Err(status_err(
                404,
                "The resource you requested could not be found.",
                None,
            ));
        }
        if self.pending_posts.get() > 0 {
            self.pending_posts.set(self.pending_posts.get() - 1);
            return Err(status_err(
                422,
                "The reserved IP already has a pending event.",
                None,
            ));
        }
        if self.holder.get() == Some(droplet) {
            return Err(status_err(
                422,
                "The Droplet is already assigned a reserved IP.",
                None,
            ));
        }
        self.target.set(Some(droplet));
        Ok(ActionState {
            id: 7,
            status: ActionStatus::InProgress,
        })
    }
    async fn get_action(&self, id: u64) -> Result<ActionState, ApiError> {
        self.enter("get_action")?;
        if self.listed.borrow().contains(&id) {
            self.listed.borrow_mut().retain(|x| *x != id);
            return Ok(ActionState {
                id,
                status: ActionStatus::Completed,
            });
        }
        if self.action_404.get() > 0 {
            self.action_404.set(self.action_404.get() - 1);
            return Err(status_err(404, "not found", None));
        }
        if self.polls.get() > 0 {
            self.polls.set(self.polls.get() - 1);
            return Ok(ActionState {
                id,
                status: ActionStatus::InProgress,
            });
        }
        if let Some(t) = self.target.take() {
            self.holder.set(Some(t));
        }
        Ok(ActionState {
            id,
            status: ActionStatus::Completed,
        })
    }
    async fn pending_actions(&self) -> Result<Vec<ActionState>, ApiError> {
        self.enter("pending_actions")?;
        if self.list_404.get() > 0 {
            self.list_404.set(self.list_404.get() - 1);
            return Err(status_err(
                404,
                "The resource you requested could not be found.",
                None,
            ));
        }
        Ok(self
            .listed
            .borrow()
            .iter()
            .map(|&id| ActionState {
                id,
                status: ActionStatus::InProgress,
            })
            .collect())
    }
}

fn ctx(api: &Rc<Fake>) -> Ctx<Rc<Fake>> {
    Ctx {
        api: api.clone(),
        instance: "VI_1".into(),
        status: Rc::new(RefCell::new(CloudStatus::new(IP))),
        cancel: Rc::new(Cell::new(false)),
        jitter: Jitter::seeded(99),
        reconcile: Duration::from_secs(60),
    }
}

fn transient() -> ApiError {
    ApiError::Timeout {
        what: "GET reserved IP",
        timeout: API_TIMEOUT,
    }
}

#[tokio::test(start_paused = true)]
async fn already_here_is_one_read_and_no_assign() {
    let api = Fake::new(Some(ME));
    let mut c = ctx(&api);
    assert_eq!(ensure(&mut c, ME).await, Ok(Outcome::AlreadyHere));
    assert_eq!(api.total(), 1);
    assert_eq!(c.status.borrow().assigns, 0);
}

#[tokio::test(start_paused = true)]
async fn moves_follows_and_verifies() {
    let api = Fake::new(Some(OTHER));
    api.polls.set(2);
    let mut c = ctx(&api);
    assert_eq!(
        ensure(&mut c, ME).await,
        Ok(Outcome::Moved { from: Some(OTHER) })
    );
    assert_eq!(api.holder.get(), Some(ME));
    // read, assign, 3 polls (2 in progress), verify read.
    let kinds: Vec<&str> = api.log.borrow().iter().map(|(_, w)| *w).collect();
    assert_eq!(
        kinds,
        [
            "get_ip",
            "assign",
            "get_action",
            "get_action",
            "get_action",
            "get_ip"
        ]
    );
    // Polls at 150 ms, then 225, then 337.5 ms gaps.
    let polls = api.calls("get_action");
    assert_eq!(polls[0], Duration::from_millis(150));
    assert_eq!(polls[1] - polls[0], Duration::from_millis(225));
    let st = c.status.borrow();
    assert_eq!((st.assigns, st.holder), (1, Some(ME)));
    assert_eq!(st.api_calls, 6);
}

#[tokio::test(start_paused = true)]
async fn action_404_falls_back_to_reading_the_ip() {
    let api = Fake::new(None);
    api.action_404.set(1);
    let mut c = ctx(&api);
    // The first poll 404s; the IP read then shows the IP locked (not done yet); the second
    // poll completes.
    assert_eq!(ensure(&mut c, ME).await, Ok(Outcome::Moved { from: None }));
    let kinds: Vec<&str> = api.log.borrow().iter().map(|(_, w)| *w).collect();
    assert_eq!(
        kinds,
        [
            "get_ip",
            "assign",
            "get_action",
            "get_ip",
            "get_action",
            "get_ip"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_back_off_exponentially_with_jitter() {
    let api = Fake::new(Some(OTHER));
    for _ in 0..6 {
        api.faults.borrow_mut().push_back(transient());
    }
    let mut c = ctx(&api);
    assert_eq!(
        ensure(&mut c, ME).await,
        Ok(Outcome::Moved { from: Some(OTHER) })
    );
    let reads = api.calls("get_ip");
    let gaps: Vec<Duration> = reads.windows(2).map(|w| w[1] - w[0]).collect();
    let b = Backoff::api(Jitter::seeded(1));
    for (n, g) in gaps.iter().take(6).enumerate() {
        let c = b.ceiling(n as u32);
        assert!(
            *g >= c / 2 && *g <= c,
            "gap {n}: {g:?} not in [{:?}, {c:?}]",
            c / 2
        );
    }
    assert_eq!(api.calls("assign").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_for_retry_after() {
    let api = Fake::new(Some(OTHER));
    api.faults.borrow_mut().push_back(ApiError::Status {
        what: "GET reserved IP",
        status: 429,
        id: "too_many_requests".into(),
        message: "API rate limit exceeded.".into(),
        request_id: None,
        wait: Some(Duration::from_secs(7)),
    });
    let mut c = ctx(&api);
    assert!(ensure(&mut c, ME).await.is_ok());
    let reads = api.calls("get_ip");
    assert_eq!(reads[1] - reads[0], Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn pending_event_waits_then_follows_listed_action() {
    let api = Fake::new(Some(OTHER));
    api.pending_posts.set(3);
    let mut c = ctx(&api);
    assert!(ensure(&mut c, ME).await.is_ok());
    assert_eq!(api.calls("assign").len(), 4);
    let posts = api.calls("assign");
    // Waits of 0.5-1 s, 1-2 s, 2-4 s between the 422s (pending backoff).
    let gaps: Vec<Duration> = posts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(500)
            && gaps[0] <= Duration::from_secs(1) + Duration::from_millis(1)
    );
    assert!(gaps[2] >= Duration::from_secs(2));

    // With an in-progress action listed, it is followed instead of waiting blindly.
    let api = Fake::new(Some(OTHER));
    api.pending_posts.set(1);
    api.listed.borrow_mut().push(55);
    let mut c = ctx(&api);
    assert!(ensure(&mut c, ME).await.is_ok());
    let kinds: Vec<&str> = api.log.borrow().iter().map(|(_, w)| *w).collect();
    assert_eq!(
        &kinds[..5],
        [
            "get_ip",
            "assign",
            "pending_actions",
            "get_action",
            "get_ip"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn auth_errors_stop_at_once() {
    for status in [401, 403] {
        let api = Fake::new(Some(OTHER));
        api.faults
            .borrow_mut()
            .push_back(status_err(status, "Unable to authenticate you.", None));
        let mut c = ctx(&api);
        assert!(matches!(ensure(&mut c, ME).await, Err(Fatal::Auth(_))));
        assert_eq!(api.total(), 1);
    }
}

/// Issue 11 item 5: a 404 for the IP itself is reported and retried with capped backoff, never
/// a give-up; the effort completes once the IP exists again.
#[tokio::test(start_paused = true)]
async fn unknown_ip_is_reported_and_read_again_with_capped_backoff() {
    let api = Fake::new(Some(OTHER));
    api.gone.set(true);
    let mut c = ctx(&api);
    c.reconcile = Duration::from_secs(5);
    c.status.borrow_mut().droplet_id = Some(ME);
    let status = c.status.clone();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let task = tokio::task::spawn_local(async move { ensure(&mut c, ME).await });
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert!(!task.is_finished(), "still trying, not given up");
            let st = status.borrow().state();
            assert!(
                st.starts_with("degraded: the reserved IP is unknown"),
                "{st}"
            );
            let reads = api.calls("get_ip");
            let gaps: Vec<Duration> = reads.windows(2).map(|w| w[1] - w[0]).collect();
            // 0.5-1 s, 1-2 s, 2-4 s, then never more than reconcile_interval (5 s).
            assert!(
                gaps.iter().all(|g| *g <= Duration::from_secs(5)),
                "{gaps:?}"
            );
            assert!(gaps[0] >= GONE_BASE / 2, "{gaps:?}");
            assert!(
                reads.len() >= 12 && reads.len() <= 60 / 2 + 4,
                "{}",
                reads.len()
            );
            assert_eq!(api.calls("assign").len(), 0);
            // The IP exists again: the effort goes on and moves it.
            api.gone.set(false);
            let r = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert_eq!(
                r.map(|j| j.ok()),
                Ok(Some(Ok(Outcome::Moved { from: Some(OTHER) })))
            );
            assert_eq!(api.holder.get(), Some(ME));
        })
        .await;
}

/// Issue 11 item 5: a 404 for the list of actions during a 422 "pending event" re-reads the IP
/// and goes on with backoff (it stopped the takeover until reload before).
#[tokio::test(start_paused = true)]
async fn action_list_404_during_pending_event_rereads_the_ip_and_goes_on() {
    let api = Fake::new(Some(OTHER));
    api.pending_posts.set(3);
    api.list_404.set(3);
    let mut c = ctx(&api);
    assert_eq!(
        ensure(&mut c, ME).await,
        Ok(Outcome::Moved { from: Some(OTHER) })
    );
    assert_eq!(api.holder.get(), Some(ME));
    let kinds: Vec<&str> = api.log.borrow().iter().map(|(_, w)| *w).collect();
    // Each 404 for the list is followed at once by a read of the IP itself.
    for (i, k) in kinds.iter().enumerate() {
        if *k == "pending_actions" {
            assert_eq!(kinds.get(i + 1), Some(&"get_ip"), "{kinds:?}");
        }
    }
    assert_eq!(api.calls("pending_actions").len(), 3);
    assert_eq!(api.calls("assign").len(), 4);
    // The 422s are spaced by the pending backoff (no tight loop).
    let posts = api.calls("assign");
    assert!(posts[1] - posts[0] >= PENDING_BASE / 2, "{posts:?}");

    // A 404 for the assign POST (the actions collection) does not stop it either: the IP is
    // read at once, and the assign retried after the backoff.
    let api = Fake::new(Some(OTHER));
    api.post_404.set(1);
    let mut c = ctx(&api);
    assert_eq!(
        ensure(&mut c, ME).await,
        Ok(Outcome::Moved { from: Some(OTHER) })
    );
    let kinds: Vec<&str> = api.log.borrow().iter().map(|(_, w)| *w).collect();
    assert_eq!(
        &kinds[..5],
        ["get_ip", "assign", "get_ip", "get_ip", "assign"],
        "{kinds:?}"
    );
}

/// Issue 11 item 5: after a 401 the effort stops (no retry storm) but a Master re-checks once
/// per reconcile_interval, and resumes when the token is accepted again; nothing ends the
/// periodic re-check.
#[tokio::test(start_paused = true)]
async fn term_rechecks_every_interval_after_a_refused_token() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let api = Fake::new(Some(OTHER));
            let refused = || status_err(401, "Unable to authenticate you.", None);
            api.faults
                .borrow_mut()
                .extend([refused(), refused(), refused()]);
            let mut c = ctx(&api);
            c.reconcile = Duration::from_secs(10);
            let status = c.status.clone();
            let droplet = Rc::new(DropletId::default());
            droplet.set(ME);
            let task = tokio::task::spawn_local(term(c, droplet, Rc::new(Notify::new())));
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(api.total(), 1, "no retry after a 401");
            let st = status.borrow().state();
            assert!(
                st.starts_with("degraded: the API refused the token"),
                "{st}"
            );
            // Two re-checks, 10 s apart, both refused: one call each.
            tokio::time::sleep(Duration::from_secs(20)).await;
            assert_eq!(api.total(), 3);
            assert!(status.borrow().blocked.is_some());
            // Accepted again at the next re-check: the IP is moved.
            tokio::time::sleep(Duration::from_secs(11)).await;
            assert_eq!(api.holder.get(), Some(ME));
            assert_eq!(status.borrow().blocked, None);
            assert_eq!(status.borrow().state(), "ok");
            let reads = api.calls("get_ip");
            assert_eq!(reads[1] - reads[0], Duration::from_secs(10));
            // And the periodic re-check goes on: moved by hand, taken back within an interval.
            api.holder.set(Some(OTHER));
            tokio::time::sleep(Duration::from_secs(11)).await;
            assert_eq!(api.holder.get(), Some(ME));
            task.abort();
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn outage_calls_stay_within_the_backoff_bound() {
    let api = Fake::new(Some(OTHER));
    for _ in 0..1000 {
        api.faults.borrow_mut().push_back(transient());
    }
    let mut c = ctx(&api);
    let r = tokio::time::timeout(Duration::from_secs(30), ensure(&mut c, ME)).await;
    assert!(r.is_err(), "still retrying");
    let n = api.total() as u32;
    assert!(n <= max_attempts_within(Duration::from_secs(30)), "{n}");
    assert!(n >= 6, "{n}");
}

#[tokio::test(start_paused = true)]
async fn cancelled_term_starts_no_request() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let api = Fake::new(Some(OTHER));
            for _ in 0..1000 {
                api.faults.borrow_mut().push_back(transient());
            }
            let c = ctx(&api);
            let cancel = c.cancel.clone();
            let droplet = Rc::new(DropletId::default());
            droplet.set(ME);
            let task = tokio::task::spawn_local(term(c, droplet, Rc::new(Notify::new())));
            tokio::time::sleep(Duration::from_secs(5)).await;
            cancel.set(true);
            task.abort();
            let before = api.total();
            tokio::time::sleep(Duration::from_secs(120)).await;
            assert_eq!(api.total(), before, "no call after cancellation");
            assert!(task.await.is_err_and(|e| e.is_cancelled()));

            // The flag alone also stops the next request from starting.
            let api = Fake::new(Some(OTHER));
            let c = ctx(&api);
            c.cancel.set(true);
            assert_eq!(
                c.call(c.api.get_ip()).await.map(|_| ()),
                Err(Fatal::Cancelled)
            );
            assert_eq!(api.total(), 0);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn term_reconciles_periodically_and_on_kick() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let api = Fake::new(Some(ME));
            let c = ctx(&api);
            let status = c.status.clone();
            let droplet = Rc::new(DropletId::default());
            let kick = Rc::new(Notify::new());
            let task = tokio::task::spawn_local(term(c, droplet.clone(), kick.clone()));
            // Waits for the droplet id before any call.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(api.total(), 0);
            assert_eq!(status.borrow().state(), "starting");
            droplet.set(ME);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(api.total(), 1);
            assert_eq!(status.borrow().state(), "ok");
            // Periodic: one read a minute.
            tokio::time::sleep(Duration::from_secs(121)).await;
            assert_eq!(api.calls("get_ip").len(), 3);
            // Someone moves it; a lower-priority advert kicks a check at once, which takes it back.
            api.holder.set(Some(OTHER));
            kick.notify_one();
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(api.holder.get(), Some(ME));
            assert_eq!(status.borrow().moves, 1);
            // Kicks in a burst are coalesced and spaced by KICK_MIN_GAP.
            let before = api.total();
            for _ in 0..10 {
                kick.notify_one();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(api.total() - before <= 2, "{}", api.total() - before);
            task.abort();
        })
        .await;
}

#[test]
fn status_states() {
    let mut s = CloudStatus::new(IP);
    assert_eq!(s.state(), "starting");
    s.metadata_error = Some("metadata droplet id: no answer within 2s".into());
    assert_eq!(
        s.state(),
        "degraded: droplet id unknown (metadata droplet id: no answer within 2s)"
    );
    s.droplet_id = Some(ME);
    s.probed = true;
    s.holder = Some(OTHER);
    assert_eq!(s.state(), "holder: 1");
    s.holder = Some(ME);
    assert_eq!(s.state(), "holder: 2 (this droplet)");
    s.role = Role::Assigning;
    assert_eq!(s.state(), "assigning");
    s.api_error = Some("GET reserved IP: HTTP 500".into());
    assert_eq!(s.state(), "degraded: GET reserved IP: HTTP 500");
    s.api_error = None;
    s.role = Role::Verified;
    assert_eq!(s.state(), "ok");
    s.blocked = Some("the API refused the token".into());
    assert_eq!(s.state(), "degraded: the API refused the token");
}
