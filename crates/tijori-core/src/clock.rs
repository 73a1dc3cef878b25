//! Time as a port, so tests can move it instead of sleeping.

use std::sync::Mutex;

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// Where the use-cases read the time: `SystemClock` when running, `ManualClock` in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time; `Tijori::now` reads it for the times it records.
    fn now(&self) -> DateTime<Utc>;
}

/// The real time, cut to microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Microseconds, the finest PostgreSQL keeps: a time written and read back is
    /// the same time on either database.
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Stopped at `start` until moved.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Moves time on by `by`, as if that much had passed.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock lock") += by;
    }

    /// Jumps to `to`, forward or back.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
