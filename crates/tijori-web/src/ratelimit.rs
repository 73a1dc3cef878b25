//! Per-user limits on requests that cost a call to a gateway ("check payment status"),
//! so one account cannot make us hammer Khalti or Chapa.
//!
//! A fixed window per user, in this process's memory: with several tijori processes
//! each allows the limit, which is still a bound. The map forgets users whose window
//! has passed, so it holds at most the users active in the last window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request by `key`: `Ok` if within the limit, else how long until the
    /// window ends.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = seen.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window - now.duration_since(entry.0));
        }
        entry.1 += 1;
        Ok(())
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
    fn allows_the_limit_per_key_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait <= Duration::from_millis(200));
        assert!(limiter.check("b").is_ok(), "another user is not held up");
        std::thread::sleep(Duration::from_millis(210));
        assert!(limiter.check("a").is_ok());
    }
}
