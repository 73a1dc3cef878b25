//! Who is waiting to hear that a payment changed: the live status pages.
//!
//! One small channel per watched payment, made when its first watcher comes and
//! dropped with its last, so a change wakes only the watchers of that payment. (One
//! channel for all changes woke every open page at every settle: with thousands of
//! pages open under load, most of the server's time.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::id::PaymentId;

/// This process's watchers, by payment. Changes settled by another process reach it
/// through `Tijori::announce_change`.
#[derive(Default)]
pub struct ChangeFeed {
    watched: Mutex<HashMap<PaymentId, watch::Sender<u64>>>,
    /// Watchers alive now (live-status streams), for the operator's gauge.
    watchers: std::sync::atomic::AtomicUsize,
}

impl ChangeFeed {
    /// Shared: each `ChangeWatcher` holds it, to drop its payment's channel when the
    /// last watcher goes.
    pub fn new() -> Arc<ChangeFeed> {
        Arc::new(ChangeFeed::default())
    }

    /// Starts watching `payment`: every change announced from now on wakes it.
    pub fn watch(self: &Arc<Self>, payment: &PaymentId) -> ChangeWatcher {
        let changes = self
            .lock()
            .entry(payment.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        self.watchers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ChangeWatcher {
            changes,
            payment: payment.clone(),
            feed: self.clone(),
        }
    }

    /// Wakes the payment's watchers, if it has any.
    pub fn announce(&self, payment: &PaymentId) {
        if let Some(sender) = self.lock().get(payment) {
            sender.send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    /// Payments someone is watching now.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    /// Watchers alive now (one per open live-status stream).
    pub fn watchers(&self) -> usize {
        self.watchers.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PaymentId, watch::Sender<u64>>> {
        // Nothing here is left half-changed by a panic (one map insert or removal).
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One watcher of one payment.
pub struct ChangeWatcher {
    changes: watch::Receiver<u64>,
    payment: PaymentId,
    feed: Arc<ChangeFeed>,
}

impl ChangeWatcher {
    /// Waits for the next change announced since the last call (or since watching
    /// began). Changes announced in between are folded into one wake-up: the watcher
    /// re-reads the payment anyway.
    pub async fn changed(&mut self) {
        // The sender lives while any watcher does, this one included.
        let _ = self.changes.changed().await;
    }
}

impl Drop for ChangeWatcher {
    fn drop(&mut self) {
        self.feed
            .watchers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let mut watched = self.feed.lock();
        // This watcher's receiver still counts until the struct is gone.
        if watched
            .get(&self.payment)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            watched.remove(&self.payment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_change_wakes_only_its_payments_watchers() {
        let feed = ChangeFeed::new();
        let (a, b) = (PaymentId::generate(), PaymentId::generate());
        let mut on_a = feed.watch(&a);
        let mut also_on_a = feed.watch(&a);
        let mut on_b = feed.watch(&b);
        assert_eq!(feed.watched(), 2);
        assert_eq!(feed.watchers(), 3);

        feed.announce(&a);
        tokio::time::timeout(Duration::from_secs(1), on_a.changed())
            .await
            .expect("woken");
        tokio::time::timeout(Duration::from_secs(1), also_on_a.changed())
            .await
            .expect("woken too");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), on_b.changed())
                .await
                .is_err(),
            "another payment's change is not b's business"
        );
        // A change announced before the watcher waits is not lost.
        feed.announce(&b);
        tokio::time::timeout(Duration::from_secs(1), on_b.changed())
            .await
            .expect("remembered");

        drop(on_a);
        assert_eq!(feed.watched(), 2, "a still has a watcher");
        drop(also_on_a);
        drop(on_b);
        assert_eq!(
            feed.watched(),
            0,
            "nothing kept for payments nobody watches"
        );
        feed.announce(&a); // nobody listening is fine
    }
}
