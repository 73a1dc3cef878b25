//! Rate limits: how often one user, or one client address, may do something that
//! costs a gateway call, a row, or a password hash.
//!
//! Keys are things a caller does not choose freely: a user id (an account costs a
//! sign-up, itself limited per address), or a client address (an IPv6 caller's whole
//! /64, which one host usually holds). Never a value taken from the request, like a
//! tx_ref: an attacker makes those up by the thousand, and each would get a fresh
//! allowance and an entry in memory.
//!
//! The limiting itself is `governor`'s GCRA, in this process's memory: with several
//! tijori processes each allows the limit, which is still a bound. Memory is bounded
//! too: keys whose allowance has refilled are forgotten every so often, and past
//! [`MOST_KEYS`] live keys the limiter holds no new key: every key it does not hold
//! shares one allowance (a flood from many addresses gets one between them), while
//! the users and addresses it already holds keep their own.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::Quota;

/// The most keys one limiter holds. Far more than the users or addresses active in
/// one window on one tijori; reached only by a flood, whose new keys then share one allowance.
pub const MOST_KEYS: usize = 100_000;

/// How many checks pass between two sweeps of the keys whose allowance is full again
/// (a power of two).
const SWEEP_EVERY: u64 = 1_024;

/// How many checks pass between two counts of the keys (so the most a limiter holds
/// is [`MOST_KEYS`] and this many more; a power of two).
const FULLNESS_EVERY: u64 = 64;

/// `limit` requests per `window` for each key, refilling evenly (a burst of `limit`).
pub struct RateLimiter<K: Hash + Eq + Clone = String> {
    gcra: governor::RateLimiter<K, Bounded<K>, DefaultClock>,
    clock: DefaultClock,
    most_keys: usize,
    checks: AtomicU64,
    /// Whether the last count found the limiter full (holding no new key).
    full: Arc<AtomicBool>,
    /// When a full limiter last swept (ms since `started`; `u64::MAX`: never). A sweep
    /// visits every key, so a flood that keeps it full must not make it sweep on
    /// every count: at most once a second.
    started: std::time::Instant,
    last_full_sweep_ms: AtomicU64,
    /// Sweeps made (the tests count them).
    sweeps: AtomicU64,
}

/// The least time between two sweeps a full limiter makes beyond its regular ones.
const FULL_SWEEP_EVERY_MS: u64 = 1_000;

/// governor's keyed state, which holds no new key while the limiter is full: a key
/// it does not hold is measured against one allowance shared by all such keys. The
/// keys it holds keep their own, so a flood of new keys neither grows the memory nor
/// locks out the users and addresses already being served.
struct Bounded<K: Hash + Eq> {
    keys: DashMap<K, InMemoryState>,
    overflow: InMemoryState,
    full: Arc<AtomicBool>,
}

impl<K: Hash + Eq + Clone> StateStore for Bounded<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.keys.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.full.load(Ordering::Relaxed) {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.keys.entry(key.clone()).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Bounded<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.keys.retain(|_, state| {
            // Reads the key's next allowed time without changing it (governor keeps
            // what it reads with `is_older_than`, which is its own).
            let next: Result<(), Option<Nanos>> = state.measure_and_replace(&NotKeyed::NonKey, Err);
            matches!(next, Err(Some(at)) if at.as_u64() > drop_below.as_u64())
        });
    }

    fn shrink_to_fit(&self) {
        self.keys.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_most_keys(limit, window, MOST_KEYS)
    }

    /// A limiter that holds at most `most_keys` keys (tests use a small one).
    pub fn with_most_keys(limit: u32, window: Duration, most_keys: usize) -> Self {
        let limit = NonZeroU32::new(limit.max(1)).expect("at least one");
        let period = (window / limit.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("a period above zero")
            .allow_burst(limit);
        let clock = DefaultClock::default();
        let full = Arc::new(AtomicBool::new(false));
        let keys = Bounded {
            keys: DashMap::new(),
            overflow: InMemoryState::default(),
            full: full.clone(),
        };
        RateLimiter {
            gcra: governor::RateLimiter::new(quota, keys, clock.clone()),
            clock,
            most_keys,
            checks: AtomicU64::new(0),
            full,
            started: std::time::Instant::now(),
            last_full_sweep_ms: AtomicU64::new(u64::MAX),
            sweeps: AtomicU64::new(0),
        }
    }

    /// Whether a full limiter may sweep now (and, if so, that it is this caller).
    fn full_sweep_due(&self) -> bool {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_full_sweep_ms.load(Ordering::Relaxed);
        (last == u64::MAX || now.saturating_sub(last) >= FULL_SWEEP_EVERY_MS)
            && self
                .last_full_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Counts a request by `key`: `Ok` if within the limit, else how long until the
    /// key may try again.
    pub fn check<Q>(&self, key: &Q) -> Result<(), Duration>
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let n = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if n & (SWEEP_EVERY - 1) == 0 {
            self.sweep();
        }
        // Counting the keys visits every shard of the map: done every so often, so
        // the limit may be passed by a few keys, never by many.
        if n & (FULLNESS_EVERY - 1) == 0 {
            let mut full = self.gcra.len() >= self.most_keys;
            if full && self.full_sweep_due() {
                self.sweep();
                full = self.gcra.len() >= self.most_keys;
                if full {
                    tracing::warn!(
                        keys = self.gcra.len(),
                        "a rate limiter is full (a flood from many users or addresses): \
                         new ones share one allowance until its keys age out"
                    );
                }
            }
            self.full.store(full, Ordering::Relaxed);
        }
        self.gcra
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the keys whose allowance has refilled (they are as good as new).
    fn sweep(&self) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.gcra.retain_recent();
        self.gcra.shrink_to_fit();
    }

    /// How many keys the limiter holds now (for /metrics and tests).
    pub fn len(&self) -> usize {
        self.gcra.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gcra.is_empty()
    }
}

/// The key for a client address: an IPv4 address, or an IPv6 address's /64 (one
/// host usually holds a whole /64, so its single addresses are free to choose).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The 429 for a refused request.
pub fn too_many(what: &str, wait: Duration) -> crate::error::ApiError {
    let seconds = wait.as_secs() + 1;
    crate::error::ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what}; try again in {seconds} s"),
    )
    .retry_after(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_per_key_then_refuses_until_it_refills() {
        let limiter: RateLimiter = RateLimiter::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait <= Duration::from_millis(300), "{wait:?}");
        assert!(limiter.check("b").is_ok(), "another user is not held up");
        std::thread::sleep(Duration::from_millis(110));
        assert!(limiter.check("a").is_ok(), "one refilled");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let limiter: RateLimiter<u32> =
            RateLimiter::with_most_keys(5, Duration::from_millis(1), 500);
        for i in 0..10_000u32 {
            let _ = limiter.check(&i);
            assert!(
                limiter.len() <= 500 + FULLNESS_EVERY as usize,
                "{} keys",
                limiter.len()
            );
        }
        // Keys whose allowance refilled are forgotten.
        std::thread::sleep(Duration::from_millis(5));
        for i in 0..SWEEP_EVERY as u32 {
            let _ = limiter.check(&(1_000_000 + i % 3));
        }
        assert!(limiter.len() <= 3, "{} keys", limiter.len());
    }

    #[test]
    fn a_full_limiter_refuses_rather_than_grows() {
        let limiter: RateLimiter<u32> =
            RateLimiter::with_most_keys(5, Duration::from_secs(60), 100);
        let refused = (0..1_000u32).filter(|i| limiter.check(i).is_err()).count();
        assert!(refused > 800, "{refused} refused");
        assert!(limiter.len() <= 100 + FULLNESS_EVERY as usize);
    }

    #[test]
    fn a_flood_that_keeps_a_limiter_full_does_not_make_it_sweep_on_every_count() {
        let limiter: RateLimiter<u32> =
            RateLimiter::with_most_keys(5, Duration::from_secs(60), 100);
        for i in 0..20_000u32 {
            let _ = limiter.check(&i);
        }
        let sweeps = limiter.sweeps.load(Ordering::Relaxed);
        // The regular one every SWEEP_EVERY counts, and at most one more a second.
        assert!(sweeps <= 20_000 / SWEEP_EVERY + 2, "{sweeps} sweeps");
    }

    #[test]
    fn keys_held_before_a_flood_keep_their_own_allowance() {
        let limiter: RateLimiter<u32> =
            RateLimiter::with_most_keys(5, Duration::from_secs(60), 100);
        assert!(limiter.check(&7).is_ok(), "a customer before the flood");
        for i in 1_000..3_000u32 {
            let _ = limiter.check(&i);
        }
        assert!(limiter.len() <= 100 + FULLNESS_EVERY as usize);
        for n in 2..=5 {
            assert!(limiter.check(&7).is_ok(), "request {n} of the customer's 5");
        }
        assert!(limiter.check(&7).is_err(), "and no more");
    }

    #[test]
    fn an_ipv6_host_is_one_key_for_its_whole_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
    }
}
