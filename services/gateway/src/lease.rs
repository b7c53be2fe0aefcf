//! Rate-limit tokens reserved in Redis ahead of the requests that spend them.
//!
//! Redis stays the only counter: a token is taken from the key's bucket
//! before any request spends it, so no key is ever admitted beyond its quota.
//! What this module adds is the reservation of several tokens in one call
//! for a key that is busy (Redis answered for it less than one lease TTL ago)
//! and far from its limit (`remaining / 4` tokens at most, capped at the
//! configured maximum). The request that made the call spends the first
//! token; requests arriving while the call is in flight claim the others and
//! wait for its answer instead of calling Redis themselves; what is left
//! after that is spent locally until the lease expires. Unspent tokens are
//! forfeited at expiry: they were counted in Redis already.
//!
//! Idle keys and keys near their limit reserve one token per request, which
//! is exactly the behaviour without leasing. The functions here take the
//! current instant as an argument, so they are tested without sleeping.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::auth::KeyId;

/// A key's tokens are reserved this many at a time at most when it has
/// `remaining` tokens left: the rest stays in Redis for other replicas.
const SHARE_DIVISOR: u64 = 4;

/// The table is swept of keys with nothing live once it holds this many.
const SWEEP_FROM: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Most tokens reserved in one call; 1 disables leasing.
    pub max: u64,
    /// How long reserved tokens may be spent, and how recent the last call
    /// for a key must be for the key to count as busy.
    pub ttl: Duration,
}

/// Redis' answer to one call for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Tokens granted; 0 means the key is limited.
    pub granted: u64,
    /// Tokens left in the bucket after the grant.
    pub remaining: u64,
    /// Until the bucket is full again, counted from `at`.
    pub reset: Duration,
    /// When the answer arrived.
    pub at: Instant,
}

/// The quota seen by a request admitted on a reserved token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spent {
    /// What the bucket holds plus what this replica still holds reserved:
    /// what a client spending them all one after another would be told.
    pub remaining: u64,
    pub reset: Duration,
}

/// What a request does about its key's limit.
#[derive(Debug)]
pub enum Plan {
    /// Admitted on a token reserved earlier.
    Local(Spent),
    /// A call in flight reserves a token for this request: wait for it.
    Wait(Claim),
    /// Call Redis for `n` tokens. With `n > 1` the reservation lets later
    /// requests claim the extra tokens; it must be completed with
    /// [`Leases::record`] or dropped (on failure).
    Call {
        n: u64,
        reservation: Option<Reservation>,
    },
    /// No reserved token, and Redis is not to be called.
    Skip,
}

pub struct Leases {
    config: LeaseConfig,
    table: Arc<Mutex<Table>>,
}

struct Table {
    keys: HashMap<KeyId, KeyState>,
    next_id: u64,
    sweep_at: usize,
}

#[derive(Default)]
struct KeyState {
    /// When Redis last answered for the key, and the tokens it had left.
    last: Option<(Instant, u64)>,
    lease: Option<Lease>,
    /// The latest multi-token call still in flight.
    in_flight: Option<InFlight>,
}

struct Lease {
    tokens: u64,
    expires: Instant,
    /// The bucket's remaining tokens and full-again instant at the grant.
    remaining: u64,
    full_at: Instant,
}

struct InFlight {
    id: u64,
    unclaimed: u64,
    claimed: u64,
    outcome: watch::Receiver<Option<Grant>>,
}

/// A request's claim on a token of a call in flight.
#[derive(Debug)]
pub struct Claim {
    /// The token's position in the call's grant (0 is the caller's own).
    index: u64,
    outcome: watch::Receiver<Option<Grant>>,
}

/// A multi-token call in flight; dropping it uncompleted withdraws it and
/// sends its claimants to Redis on their own.
pub struct Reservation {
    table: Arc<Mutex<Table>>,
    key: KeyId,
    id: u64,
    n: u64,
    outcome: Option<watch::Sender<Option<Grant>>>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // The table holds no invariant a panicking holder could break halfway.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The quota for the token at `index` of `grant`, if the grant covers it.
fn spend(grant: &Grant, index: u64, now: Instant) -> Option<Spent> {
    (index < grant.granted).then(|| Spent {
        remaining: grant.remaining + (grant.granted - 1 - index),
        reset: (grant.at + grant.reset).saturating_duration_since(now),
    })
}

impl KeyState {
    fn is_live(&self, now: Instant, ttl: Duration) -> bool {
        self.in_flight.is_some()
            || self
                .last
                .is_some_and(|(at, _)| now.saturating_duration_since(at) < ttl)
            || self
                .lease
                .as_ref()
                .is_some_and(|lease| lease.tokens > 0 && now < lease.expires)
    }
}

impl Leases {
    /// `None` when the configuration disables leasing (`max` of 1).
    pub fn new(config: LeaseConfig) -> Option<Self> {
        (config.max > 1).then(|| Self {
            config,
            table: Arc::new(Mutex::new(Table {
                keys: HashMap::new(),
                next_id: 0,
                sweep_at: SWEEP_FROM,
            })),
        })
    }

    /// Decides how the request for `key` at `now` is checked. `may_call` is
    /// false while Redis is being skipped after a failure: only a token
    /// already reserved can admit the request then.
    pub fn plan(&self, key: &KeyId, now: Instant, may_call: bool) -> Plan {
        let mut guard = lock(&self.table);
        let table = &mut *guard;
        if !table.keys.contains_key(key) && table.keys.len() >= table.sweep_at {
            let ttl = self.config.ttl;
            table.keys.retain(|_, state| state.is_live(now, ttl));
            table.sweep_at = SWEEP_FROM.max(table.keys.len() * 2);
        }
        let state = table.keys.entry(key.clone()).or_default();

        if let Some(lease) = &mut state.lease {
            if lease.tokens > 0 && now < lease.expires {
                lease.tokens -= 1;
                return Plan::Local(Spent {
                    remaining: lease.remaining + lease.tokens,
                    reset: lease.full_at.saturating_duration_since(now),
                });
            }
            state.lease = None;
        }
        if !may_call {
            return Plan::Skip;
        }
        if let Some(in_flight) = &mut state.in_flight
            && in_flight.unclaimed > 0
        {
            in_flight.unclaimed -= 1;
            in_flight.claimed += 1;
            return Plan::Wait(Claim {
                index: in_flight.claimed,
                outcome: in_flight.outcome.clone(),
            });
        }

        let n = match state.last {
            Some((at, remaining)) if now.saturating_duration_since(at) < self.config.ttl => {
                (remaining / SHARE_DIVISOR).clamp(1, self.config.max)
            }
            _ => 1,
        };
        if n == 1 {
            return Plan::Call {
                n,
                reservation: None,
            };
        }
        let id = table.next_id;
        table.next_id += 1;
        let (sender, receiver) = watch::channel(None);
        state.in_flight = Some(InFlight {
            id,
            unclaimed: n - 1,
            claimed: 0,
            outcome: receiver,
        });
        Plan::Call {
            n,
            reservation: Some(Reservation {
                table: Arc::clone(&self.table),
                key: key.clone(),
                id,
                n,
                outcome: Some(sender),
            }),
        }
    }

    /// Records Redis' answer to a call for `key` (made with `reservation`
    /// when it asked for more than one token): the claims on the call get
    /// their tokens, and tokens nobody claimed become the key's lease.
    pub fn record(&self, key: &KeyId, grant: Grant, reservation: Option<Reservation>) {
        let mut table = lock(&self.table);
        let state = table.keys.entry(key.clone()).or_default();
        state.last = Some((grant.at, grant.remaining));
        let Some(mut reservation) = reservation else {
            return;
        };
        // A call whose entry was replaced had every extra token claimed:
        // replacing it is what a request finding none unclaimed does.
        let claimed = match &state.in_flight {
            Some(in_flight) if in_flight.id == reservation.id => {
                let claimed = in_flight.claimed;
                state.in_flight = None;
                claimed
            }
            _ => reservation.n - 1,
        };
        let left = grant.granted.saturating_sub(1 + claimed);
        if left > 0 {
            // Any earlier lease was spent or expired before this call was
            // made, but keep its tokens should one remain.
            let kept = state
                .lease
                .take()
                .filter(|lease| grant.at < lease.expires)
                .map_or(0, |lease| lease.tokens);
            state.lease = Some(Lease {
                tokens: kept + left,
                expires: grant.at + self.config.ttl,
                remaining: grant.remaining,
                full_at: grant.at + grant.reset,
            });
        }
        drop(table);
        if let Some(outcome) = reservation.outcome.take() {
            outcome.send_replace(Some(grant));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).keys.len()
    }
}

impl Reservation {
    pub fn n(&self) -> u64 {
        self.n
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            return;
        }
        let mut table = lock(&self.table);
        if let Some(state) = table.keys.get_mut(&self.key)
            && state
                .in_flight
                .as_ref()
                .is_some_and(|in_flight| in_flight.id == self.id)
        {
            state.in_flight = None;
        }
        // Dropping the sender now wakes the claimants with no grant.
    }
}

impl Claim {
    /// The claimed token once the call answers; `None` when the call failed,
    /// was abandoned, or was granted fewer tokens than were claimed, and the
    /// request must ask Redis itself.
    pub async fn wait(mut self) -> Option<Spent> {
        let grant = (*self.outcome.wait_for(Option::is_some).await.ok()?)?;
        spend(&grant, self.index, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKeys;

    const TTL: Duration = Duration::from_millis(100);

    fn leases(max: u64) -> Leases {
        Leases::new(LeaseConfig { max, ttl: TTL }).expect("leasing enabled")
    }

    fn key(name: &str) -> KeyId {
        ApiKeys::from_lines(name).verify(name).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn grant(granted: u64, remaining: u64, at: Instant) -> Grant {
        Grant {
            granted,
            remaining,
            reset: Duration::from_secs(60),
            at,
        }
    }

    /// The `n` and reservation of a plan that must call Redis.
    fn call(plan: Plan) -> (u64, Option<Reservation>) {
        match plan {
            Plan::Call { n, reservation } => {
                assert_eq!(reservation.as_ref().map_or(1, Reservation::n), n);
                (n, reservation)
            }
            other => panic!("expected a call, got {other:?}"),
        }
    }

    fn local(plan: Plan) -> Spent {
        match plan {
            Plan::Local(spent) => spent,
            other => panic!("expected a local token, got {other:?}"),
        }
    }

    fn claim(plan: Plan) -> Claim {
        match plan {
            Plan::Wait(claim) => claim,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn one_token_disables_leasing() {
        assert!(Leases::new(LeaseConfig { max: 1, ttl: TTL }).is_none());
    }

    #[test]
    fn idle_keys_ask_for_one_token() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        assert_eq!(call(leases.plan(&k, t0, true)).0, 1);
        leases.record(&k, grant(1, 99, t0), None);
        // Longer than the TTL since Redis last answered: idle again.
        assert_eq!(call(leases.plan(&k, t0 + ms(100), true)).0, 1);
        assert_eq!(call(leases.plan(&k, t0 + ms(500), true)).0, 1);
    }

    #[test]
    fn busy_keys_ask_for_a_share_of_what_is_left() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        for (remaining, expected) in [(1000, 8), (19, 4), (8, 2), (7, 1), (0, 1)] {
            leases.record(&k, grant(1, remaining, t0), None);
            let (n, reservation) = call(leases.plan(&k, t0 + ms(10), true));
            assert_eq!(n, expected, "remaining {remaining}");
            drop(reservation);
        }
    }

    #[test]
    fn leased_tokens_are_spent_locally_until_they_run_out() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 19, t0), None);
        let (n, reservation) = call(leases.plan(&k, t0 + ms(1), true));
        assert_eq!(n, 4);
        // Redis grants 4 and has 15 left: the caller spends one (and tells
        // its client 18), 3 stay reserved here.
        leases.record(&k, grant(4, 15, t0 + ms(2)), reservation);
        for remaining in [17, 16, 15] {
            let spent = local(leases.plan(&k, t0 + ms(3), true));
            assert_eq!(spent.remaining, remaining);
            assert_eq!(spent.reset, Duration::from_secs(60) - ms(1));
        }
        assert_eq!(call(leases.plan(&k, t0 + ms(4), true)).0, 3);
    }

    #[test]
    fn leased_tokens_expire() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 100, t0), None);
        let (_, reservation) = call(leases.plan(&k, t0, true));
        leases.record(&k, grant(8, 92, t0), reservation);
        local(leases.plan(&k, t0 + ms(99), true));
        // The 6 tokens left are forfeited; the key is idle by now too.
        assert_eq!(call(leases.plan(&k, t0 + ms(100), true)).0, 1);
    }

    #[test]
    fn keys_lease_apart() {
        let leases = leases(8);
        let (a, b) = (key("a"), key("b"));
        let t0 = Instant::now();
        leases.record(&a, grant(1, 100, t0), None);
        let (_, reservation) = call(leases.plan(&a, t0, true));
        leases.record(&a, grant(8, 92, t0), reservation);
        assert_eq!(call(leases.plan(&b, t0, true)).0, 1);
        local(leases.plan(&a, t0, true));
    }

    #[tokio::test]
    async fn requests_during_a_call_claim_its_tokens() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 100, t0), None);
        let (n, first) = call(leases.plan(&k, t0, true));
        assert_eq!(n, 8);
        let claims: Vec<Claim> = (0..7).map(|_| claim(leases.plan(&k, t0, true))).collect();
        // Every extra token is claimed: the next request makes a call of its own.
        let (n, second) = call(leases.plan(&k, t0, true));
        assert_eq!(n, 8);
        let late = claim(leases.plan(&k, t0, true));

        leases.record(&k, grant(8, 92, t0), first);
        let mut remaining = Vec::new();
        for claim in claims {
            remaining.push(claim.wait().await.expect("granted").remaining);
        }
        assert_eq!(remaining, [98, 97, 96, 95, 94, 93, 92]);
        // All claimed, nothing left to spend locally.
        assert!(matches!(leases.plan(&k, t0, true), Plan::Wait(_)));

        leases.record(&k, grant(8, 84, t0), second);
        assert_eq!(late.wait().await.expect("granted").remaining, 90);
    }

    #[tokio::test]
    async fn claims_beyond_the_grant_go_to_redis() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 40, t0), None);
        let (n, reservation) = call(leases.plan(&k, t0, true));
        assert_eq!(n, 8);
        let claims: Vec<Claim> = (0..3).map(|_| claim(leases.plan(&k, t0, true))).collect();
        // Another replica took most of the bucket meanwhile: 2 granted.
        leases.record(&k, grant(2, 0, t0), reservation);
        let results: Vec<Option<u64>> = outcomes(claims).await;
        assert_eq!(results, [Some(0), None, None]);
        // The key is at its limit: one token per call from now on.
        assert_eq!(call(leases.plan(&k, t0, true)).0, 1);
    }

    #[tokio::test]
    async fn unclaimed_tokens_become_the_lease() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 100, t0), None);
        let (_, reservation) = call(leases.plan(&k, t0, true));
        let claimed = claim(leases.plan(&k, t0, true));
        leases.record(&k, grant(8, 92, t0), reservation);
        assert_eq!(claimed.wait().await.unwrap().remaining, 98);
        let spent: Vec<u64> = (0..6)
            .map(|_| local(leases.plan(&k, t0, true)).remaining)
            .collect();
        assert_eq!(spent, [97, 96, 95, 94, 93, 92]);
        call(leases.plan(&k, t0, true));
    }

    #[tokio::test]
    async fn a_failed_call_sends_its_claimants_to_redis() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        leases.record(&k, grant(1, 100, t0), None);
        let (_, reservation) = call(leases.plan(&k, t0, true));
        let claimed = claim(leases.plan(&k, t0, true));
        drop(reservation);
        assert_eq!(claimed.wait().await, None);
        // The withdrawn call takes no more claims: the next request calls.
        assert_eq!(call(leases.plan(&k, t0, true)).0, 8);
    }

    #[test]
    fn while_redis_is_skipped_only_leased_tokens_admit() {
        let leases = leases(8);
        let k = key("a");
        let t0 = Instant::now();
        assert!(matches!(leases.plan(&k, t0, false), Plan::Skip));
        leases.record(&k, grant(1, 100, t0), None);
        let (_, reservation) = call(leases.plan(&k, t0, true));
        leases.record(&k, grant(2, 98, t0), reservation);
        local(leases.plan(&k, t0, false));
        assert!(matches!(leases.plan(&k, t0, false), Plan::Skip));
    }

    #[test]
    fn the_table_drops_idle_keys_when_it_grows() {
        let leases = leases(8);
        let t0 = Instant::now();
        for i in 0..SWEEP_FROM {
            let k = key(&format!("k{i}"));
            leases.record(&k, grant(1, 10, t0), None);
        }
        assert_eq!(leases.len(), SWEEP_FROM);
        // Past the TTL, none of them is live: the next new key sweeps them.
        call(leases.plan(&key("new"), t0 + TTL, true));
        assert_eq!(leases.len(), 1);
    }

    async fn outcomes(claims: Vec<Claim>) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for claim in claims {
            out.push(claim.wait().await.map(|spent| spent.remaining));
        }
        out
    }
}
