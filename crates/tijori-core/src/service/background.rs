//! Work nobody asks for: reconciling payments whose outcome never arrived, expiring
//! unpaid orders, and the worker that runs it from the jobs table.

use crate::telemetry::{self, SettledVia};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::Tijori;
use crate::error::Result;
use crate::id::{OrderId, PaymentId};
use crate::jobs::{CheckRefund, DeliverMail, Job, JobError, JobKind, NewJob, ReconcilePayment};
use crate::payment::PaymentStatus;
use crate::store::OperatorEventKind;

/// How the background work is paced.
#[derive(Clone, Debug)]
pub struct BackgroundSettings {
    /// A payment still open this long after it was created (and not looked at for as
    /// long) is looked up by the reconciler.
    pub reconcile_after: Duration,
    /// How often the recurring sweeps run.
    pub sweep_every: Duration,
    /// The most payments one sweep queues.
    pub sweep_batch: u32,
    /// How long a worker holds a claimed job before another may take it over.
    pub lease: Duration,
    /// How long before a subscription ends its renewal reminder goes out.
    pub remind_before: Duration,
    /// The refund audit looks up payments paid within this window
    /// (`TIJORI_REFUND_AUDIT_DAYS`).
    pub refund_audit_window: Duration,
    /// How many payments the refund audit looks up a minute, one at a time, evenly
    /// spread (`TIJORI_REFUND_AUDIT_PER_MINUTE`); 0 turns the audit off.
    pub refund_audit_per_minute: u32,
    /// Restock a fully refunded order when the refund was made outside tijori
    /// (`TIJORI_RESTOCK_FOUND_REFUNDS`). Off by default: a refund in the gateway's
    /// dashboard says nothing about the goods coming back.
    pub restock_found_refunds: bool,
    /// How long outgoing events, their delivery attempts and finished jobs are kept
    /// (`TIJORI_EVENT_RETENTION_DAYS`); an endpoint can be sent again what it missed
    /// within it.
    pub history_retention: Duration,
}

/// The refund audit looks a payment up at most this often.
pub const REFUND_AUDIT_RECHECK_HOURS: i64 = 6;

impl Default for BackgroundSettings {
    fn default() -> Self {
        BackgroundSettings {
            reconcile_after: Duration::minutes(15),
            sweep_every: Duration::seconds(60),
            sweep_batch: 10_000,
            lease: Duration::minutes(2),
            remind_before: Duration::days(3),
            refund_audit_window: Duration::days(14),
            refund_audit_per_minute: 4,
            restock_found_refunds: false,
            history_retention: Duration::days(30),
        }
    }
}

/// What one reconciliation pass did.
#[derive(Clone, Debug, Default)]
pub struct ReconcileReport {
    /// How many stale payments this pass took up (each at most once).
    pub checked: usize,
    /// Payments whose status this pass changed (its compare-and-set won):
    /// (payment, from, to). Of passes running at once, only one reports a transition.
    pub changed: Vec<(PaymentId, PaymentStatus, PaymentStatus)>,
    /// Payments this pass found already settled by someone else (another pass or
    /// process, a webhook, a verify) between reading them and settling them:
    /// (payment, the status it found).
    pub already_settled: Vec<(PaymentId, PaymentStatus)>,
    /// Payments the gateway could not be asked about this time, and why.
    pub failed: Vec<(PaymentId, String)>,
}

/// What looking one payment up came to, as this process saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Nothing to do, or the gateway's answer changed nothing.
    Unchanged,
    /// This process's compare-and-set moved the payment: (from, to).
    Changed(PaymentStatus, PaymentStatus),
    /// Someone else moved it first; this is the status it was found in.
    AlreadySettled(PaymentStatus),
}

impl Tijori {
    /// Looks one payment up at its gateway, if it is still open, and settles on the
    /// answer. Says whether this call changed it, or found it changed by another.
    pub async fn reconcile_payment(&self, id: &PaymentId) -> Result<Reconciled> {
        match self.store.payment(id).await? {
            Some(payment) => self.reconcile_loaded(payment).await,
            None => Ok(Reconciled::Unchanged),
        }
    }

    /// `reconcile_payment` for a payment just read.
    async fn reconcile_loaded(&self, payment: crate::payment::Payment) -> Result<Reconciled> {
        let id = &payment.id.clone();
        // Open ones, and a Chapa attempt that failed while its checkout still takes
        // another (a later success must not be lost when callback and webhook are).
        if !payment.worth_looking_up(self.now()) {
            return Ok(Reconciled::Unchanged);
        }
        let from = payment.status;
        let checked = self
            .check_at_gateway_patiently(payment, SettledVia::Reconciler)
            .await;
        // Looked at, answer or not: the next sweep leaves it for a while. (A lookup
        // that was answered noted that in its settlement.)
        if checked.is_err() {
            self.store.mark_checked(id, self.now()).await?;
        }
        let mut settled = checked?;
        let mut won = settled.changed;
        // Still unpaid after its link expired: closed, on this last look. (Khalti
        // reports Expired itself; Chapa's checkouts have no documented expiry, so
        // theirs is taken to be a day.) Money that still arrives counts: an expired
        // payment can be completed by a later answer.
        let link_end = settled.payment.link_end();
        // Only one the gateway still calls unpaid: a Pending payment is being decided
        // and stays open (looked at again on every sweep) until the gateway says.
        if settled.payment.status == PaymentStatus::Initiated && self.now() >= link_end {
            let closed = crate::gateway::GatewayAnswer {
                status: crate::gateway::GatewayStatus::Expired,
                amount_minor: 0,
                currency: None,
                transaction_id: None,
                raw: crate::gateway::RawAnswer {
                    http_status: 0,
                    body: format!(
                        "{{\"closed_by\":\"reconciler\",\"reason\":\"no payment by {}\"}}",
                        link_end.to_rfc3339()
                    ),
                },
            };
            settled = self
                .settle(&settled.payment, closed, SettledVia::Reconciler)
                .await?;
            won |= settled.changed;
        }
        let now = settled.payment.status;
        // Only the compare-and-set that won reports the transition: the status read
        // back may have been written by a concurrent pass, webhook or verify.
        Ok(match (won, now != from) {
            (_, false) => Reconciled::Unchanged,
            (true, true) => Reconciled::Changed(from, now),
            (false, true) => Reconciled::AlreadySettled(now),
        })
    }

    /// One reconciliation pass, now (`tijori reconcile --once`): every payment open
    /// for longer than the configured age, looked up with at most `concurrency` calls
    /// to the gateways at once. Read in batches of `sweep_batch`; each payment looked
    /// at is marked checked, so the next batch is the next payments.
    pub async fn reconcile_once(&self, concurrency: usize) -> Result<ReconcileReport> {
        let before = self.now() - self.background.reconcile_after;
        let mut report = ReconcileReport::default();
        // A payment that could not be marked checked comes back in the next batch;
        // looking at it twice in one pass would never end. (Those still being looked
        // up when the next batch is read come back too.)
        let mut seen = std::collections::HashSet::new();
        // Spawned, not polled in one task: the lookups' settling spreads over the
        // runtime's threads.
        let mut running = JoinSet::new();
        let mut looking_at = std::collections::HashMap::new();
        loop {
            let stale = self
                .store
                .stale_payments(before, self.now(), self.background.sweep_batch)
                .await?;
            let fresh: Vec<_> = stale
                .into_iter()
                .filter(|p| seen.insert(p.id.clone()))
                .collect();
            if fresh.is_empty() {
                if running.is_empty() {
                    break;
                }
                // The batch was all payments still being looked up: once they are
                // done (and marked checked), the next read is past them.
                while let Some(done) = running.join_next_with_id().await {
                    record(&mut report, &mut looking_at, done);
                }
                continue;
            }
            report.checked += fresh.len();
            for payment in fresh {
                while running.len() >= concurrency.max(1) {
                    if let Some(done) = running.join_next_with_id().await {
                        record(&mut report, &mut looking_at, done);
                    }
                }
                let tijori = self.clone();
                let id = payment.id.clone();
                let task = running.spawn(async move { tijori.reconcile_loaded(payment).await });
                looking_at.insert(task.id(), id);
            }
        }
        while let Some(done) = running.join_next_with_id().await {
            record(&mut report, &mut looking_at, done);
        }
        Ok(report)
    }

    /// The recurring sweep: queues a lookup for every stale payment (a payment
    /// already queued is not queued twice).
    pub async fn queue_stale_payments(&self) -> Result<usize> {
        let now = self.now();
        let stale = self
            .store
            .stale_payments(
                now - self.background.reconcile_after,
                now,
                self.background.sweep_batch,
            )
            .await?;
        let mut queued = 0;
        for p in stale {
            let job = NewJob::of(&ReconcilePayment { payment: p.id }, now);
            if self.store.enqueue_job(&job, now).await? {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// One step of the refund audit: looks up the paid payment (within the window)
    /// that was looked up least recently, if it has not been for a few hours, and
    /// settles what the gateway says (a refund made in its dashboard is found this
    /// way). Returns the payment looked at and its status after.
    pub async fn audit_one_payment(&self) -> Result<Option<(PaymentId, PaymentStatus)>> {
        let now = self.now();
        let due = self
            .store
            .payments_to_audit(
                now - self.background.refund_audit_window,
                now - Duration::hours(REFUND_AUDIT_RECHECK_HOURS),
                1,
            )
            .await?;
        let Some(payment) = due.into_iter().next() else {
            return Ok(None);
        };
        let id = payment.id.clone();
        match self
            .check_at_gateway_patiently(payment, SettledVia::RefundAudit)
            .await
        {
            Ok(settled) => Ok(Some((id, settled.payment.status))),
            Err(e) => {
                // Noted as looked at, so one payment the gateway cannot answer about
                // does not hold the audit up; it comes round again later.
                self.store.mark_checked(&id, self.now()).await?;
                Err(e)
            }
        }
    }

    /// When the next step of the refund audit runs: `refund_audit_per_minute`
    /// steps a minute, evenly spread.
    fn next_audit(&self) -> Option<DateTime<Utc>> {
        let per_minute = self.background.refund_audit_per_minute;
        (per_minute > 0)
            .then(|| self.now() + Duration::milliseconds(60_000 / i64::from(per_minute)))
    }

    /// Expires the unpaid orders past their time, returning their stock.
    pub async fn expire_due_orders(&self) -> Result<Vec<OrderId>> {
        let expired = self.store.expire_orders(self.now(), 1_000).await?;
        if !expired.is_empty() {
            info!(
                count = expired.len(),
                "expired unpaid orders and returned their stock"
            );
        }
        Ok(expired)
    }

    /// Deletes every API token and session that has expired, a batch at a time;
    /// returns how many of each went.
    pub async fn prune_expired_credentials(&self) -> Result<(u64, u64)> {
        const BATCH: u32 = 1_000;
        let now = self.now();
        let mut total = (0, 0);
        loop {
            let (tokens, sessions) = self.store.prune_expired_credentials(now, BATCH).await?;
            total = (total.0 + tokens, total.1 + sessions);
            if tokens < u64::from(BATCH) && sessions < u64::from(BATCH) {
                break;
            }
        }
        if total != (0, 0) {
            info!(
                tokens = total.0,
                sessions = total.1,
                "pruned expired API tokens and sessions"
            );
        }
        Ok(total)
    }

    /// Deletes outgoing events (with their attempts) and finished jobs older than the
    /// retention, a batch at a time; returns how many of each went.
    pub async fn prune_history(&self) -> Result<(u64, u64)> {
        const BATCH: u32 = 1_000;
        let before = self.now() - self.background.history_retention;
        let mut total = (0, 0);
        loop {
            let events = self.store.prune_events(before, BATCH).await?;
            let jobs = self.store.prune_done_jobs(before, BATCH).await?;
            total = (total.0 + events, total.1 + jobs);
            if events < u64::from(BATCH) && jobs < u64::from(BATCH) {
                break;
            }
        }
        if total != (0, 0) {
            info!(
                events = total.0,
                jobs = total.1,
                "pruned old events and finished jobs"
            );
        }
        Ok(total)
    }

    /// Queues the recurring sweeps if they are not queued yet (every worker does this
    /// at start; the jobs table keeps one of each).
    pub async fn schedule_recurring_jobs(&self) -> Result<()> {
        let now = self.now();
        for kind in [
            JobKind::ReconcileSweep,
            JobKind::ExpireOrders,
            JobKind::SubscriptionNotices,
            JobKind::PruneCredentials,
            JobKind::PruneHistory,
        ] {
            self.store
                .enqueue_job(&NewJob::recurring(kind, now), now)
                .await?;
        }
        if self.background.refund_audit_per_minute > 0 {
            let job = NewJob::recurring(JobKind::RefundAudit, now);
            self.store.enqueue_job(&job, now).await?;
        }
        Ok(())
    }

    /// Claims up to `limit` due jobs for `worker`, of which at most `max_deliveries`
    /// deliver outgoing events.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        max_deliveries: u32,
    ) -> Result<Vec<Job>> {
        let now = self.now();
        Ok(self
            .store
            .claim_jobs(
                worker,
                limit,
                now + self.background.lease,
                now,
                max_deliveries,
            )
            .await?)
    }

    /// Runs a claimed job and records how it went: done (or queued again, for a
    /// recurring one), queued for a retry with backoff, or dead.
    pub async fn run_job(&self, worker: &str, job: Job) -> Result<()> {
        let outcome = self.execute(&job, worker).await;
        let now = self.now();
        let counted = match outcome {
            Ok(Ran::Recorded(outcome)) => outcome,
            Ok(Ran::Done(next)) => {
                if !self.store.complete_job(job.id, worker, next, now).await? {
                    // Our lease ran out and another worker took the job over; it is
                    // idempotent, so both runs did the same thing.
                    warn!(job = job.id, kind = %job.kind, "job finished after its lease was taken over");
                }
                JobOutcome::Done
            }
            Err(e) => {
                let retry_at = job.kind.retry_at(job.attempts, job.max_attempts, now);
                // With the whole chain of causes.
                let e = format!("{e:#}");
                warn!(job = job.id, kind = %job.kind, attempts = job.attempts, error = %e, dead = retry_at.is_none(), "job failed");
                self.store
                    .fail_job(job.id, worker, &e, retry_at, now)
                    .await?;
                // A delivery that gave up is not an operator's to retry one by one: its
                // endpoint is disabled (and an operator told) once it has failed for
                // days, and the admin redelivers what failed since then.
                if retry_at.is_none() && job.kind != JobKind::DeliverEvent {
                    let payment = job.payload_as::<ReconcilePayment>().ok().map(|j| j.payment);
                    self.store
                        .record_operator_event(
                            OperatorEventKind::JobDead,
                            payment.as_ref(),
                            &format!("{} gave up after {} attempts: {e}", job.kind, job.attempts),
                            now,
                        )
                        .await?;
                }
                match retry_at {
                    Some(_) => JobOutcome::Retry,
                    None => JobOutcome::Dead,
                }
            }
        };
        metrics::counter!(
            telemetry::JOBS_RUN,
            "kind" => job.kind.as_str(),
            "outcome" => counted.as_str(),
        )
        .increment(1);
        Ok(())
    }

    /// Claims and runs every job due now, `concurrency` at a time, until none is
    /// left. Returns how many ran. (The worker loop does the same continuously; tests
    /// and `tijori reconcile` call this.)
    pub async fn run_due_jobs(&self, worker: &str, concurrency: u32) -> Result<usize> {
        let mut ran = 0;
        loop {
            let jobs = self.claim_jobs(worker, concurrency, concurrency).await?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            ran += jobs.len();
            let results: Vec<_> = stream::iter(jobs)
                .map(|job| self.run_job(worker, job))
                .buffer_unordered(concurrency.max(1) as usize)
                .collect()
                .await;
            for r in results {
                r?;
            }
        }
    }

    async fn execute(&self, job: &Job, worker: &str) -> std::result::Result<Ran, JobError> {
        let next = || Some(self.now() + self.background.sweep_every);
        let done = match job.kind {
            JobKind::ReconcileSweep => {
                let queued = self
                    .queue_stale_payments()
                    .await
                    .map_err(JobError::failed)?;
                if queued > 0 {
                    info!(queued, "reconciler: queued lookups of stale payments");
                }
                Ok(next())
            }
            JobKind::ExpireOrders => {
                self.expire_due_orders().await.map_err(JobError::failed)?;
                Ok(next())
            }
            JobKind::SubscriptionNotices => {
                self.queue_notices().await.map_err(JobError::failed)?;
                // Receipts are the other mail a customer is due; the same sweep
                // writes them, a minute at most after the payment completed.
                self.queue_receipts().await.map_err(JobError::failed)?;
                Ok(next())
            }
            JobKind::DeliverMail => {
                let DeliverMail { mail } = job.payload_as()?;
                self.deliver_mail(&mail).await.map(|()| None)
            }
            JobKind::PruneCredentials => {
                self.prune_expired_credentials()
                    .await
                    .map_err(JobError::failed)?;
                // Expired credentials already sign nobody in: pruning is tidying,
                // so once an hour (or per sweep, if sweeps are rarer) is plenty.
                Ok(Some(
                    self.now() + self.background.sweep_every.max(Duration::hours(1)),
                ))
            }
            JobKind::ReconcilePayment => {
                let ReconcilePayment { payment: id } = job.payload_as()?;
                match self
                    .reconcile_payment(&id)
                    .await
                    .map_err(JobError::failed)?
                {
                    Reconciled::Changed(from, to) => {
                        info!(payment = %id, %from, %to, "reconciler settled a payment");
                        Ok(None)
                    }
                    _ => Ok(None),
                }
            }
            JobKind::CheckRefund => {
                let CheckRefund { refund } = job.payload_as()?;
                self.check_refund_job(&refund).await
            }
            JobKind::PruneHistory => {
                self.prune_history().await.map_err(JobError::failed)?;
                // Tidying, like pruning credentials: hourly is plenty.
                Ok(Some(
                    self.now() + self.background.sweep_every.max(Duration::hours(1)),
                ))
            }
            // A try records the job's outcome with itself, in one write.
            JobKind::DeliverEvent => {
                return Ok(match self.deliver_event(job, worker).await? {
                    Some(outcome) => Ran::Recorded(outcome),
                    None => Ran::Done(None),
                });
            }
            JobKind::RefundAudit => {
                // A look-up that failed is not the audit's failure: the next step
                // looks at the next payment.
                if let Err(e) = self.audit_one_payment().await {
                    warn!(error = %format!("{e:#}"), "refund audit: a look-up failed");
                }
                Ok(self.next_audit())
            }
        };
        done.map(Ran::Done)
    }
}

/// What running a job leaves `run_job` to record.
enum Ran {
    /// It is done; a recurring job is queued again for this time.
    Done(Option<DateTime<Utc>>),
    /// It recorded its own outcome with its work, in one write (a delivery's try).
    Recorded(JobOutcome),
}

/// How a job's run ended, for the operator's count (`telemetry::JOBS_RUN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobOutcome {
    /// Done (a recurring one queued again).
    Done,
    /// Failed, queued again with backoff.
    Retry,
    /// Failed with no tries left: an operator's to look at.
    Dead,
}

impl JobOutcome {
    fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Retry => "retry",
            JobOutcome::Dead => "dead",
        }
    }
}

/// Runs jobs continuously: up to `concurrency` at once, claiming more as each
/// finishes, polling when there is nothing to do.
pub struct Worker {
    tijori: Tijori,
    id: String,
    concurrency: usize,
    /// At most this many of the slots deliver outgoing events (half, at least one): a
    /// merchant's receiver that hangs costs a slot 15 s a try, and a burst or a
    /// redelivery queues thousands at once; neither may hold up the look-ups that
    /// grant customers what they paid for, the refunds' checks or the mail.
    delivery_slots: usize,
    /// Deliveries running now (each task counts itself out when it ends).
    delivering: Arc<AtomicUsize>,
    /// Where deliveries run: this runtime unless the process gives them one of their
    /// own (the binary's runs its threads at a lower CPU priority, so that on a busy
    /// machine the payments get the CPU first).
    delivery_runtime: Option<tokio::runtime::Handle>,
    poll: StdDuration,
}

impl Worker {
    /// A worker running up to `concurrency` jobs at once (at least one), looking for
    /// work every second; its id names the host, the process and a random part.
    pub fn new(tijori: Tijori, concurrency: usize) -> Self {
        Worker {
            tijori,
            // Host and process make a worker recognisable in the jobs table.
            id: format!(
                "{}-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            concurrency: concurrency.max(1),
            delivery_slots: (concurrency / 2).max(1),
            delivering: Arc::default(),
            delivery_runtime: None,
            poll: StdDuration::from_secs(1),
        }
    }

    /// How long the worker waits before looking for jobs again while it has room for
    /// more (a second by default).
    pub fn with_poll_interval(mut self, poll: StdDuration) -> Self {
        self.poll = poll;
        self
    }

    /// Runs deliveries of outgoing events on `runtime` rather than the worker's own.
    pub fn with_delivery_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.delivery_runtime = Some(runtime);
        self
    }

    /// The name this worker claims jobs under, as the jobs table shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims up to `free` jobs, of which at most the free delivery slots' worth
    /// deliver events.
    async fn claim(&self, free: usize) -> Result<Vec<Job>> {
        let deliveries = self
            .delivery_slots
            .saturating_sub(self.delivering.load(Ordering::Relaxed));
        self.tijori
            .claim_jobs(&self.id, free as u32, deliveries as u32)
            .await
    }

    /// Runs until `stop` resolves, then lets the jobs in hand finish.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        if let Err(e) = self.tijori.schedule_recurring_jobs().await {
            error!(error = %format!("{e:#}"), "worker: could not schedule the recurring jobs");
        }
        info!(
            worker = self.id,
            concurrency = self.concurrency,
            "worker started"
        );
        let me = Arc::new(self);
        let mut running: JoinSet<()> = JoinSet::new();
        tokio::pin!(stop);
        loop {
            me.tijori.note_worker_alive();
            let free = me.concurrency - running.len();
            let mut saturated = free == 0;
            if free > 0 {
                match me.claim(free).await {
                    Ok(jobs) => {
                        saturated = jobs.len() == free;
                        for job in jobs {
                            let slot = (job.kind == JobKind::DeliverEvent)
                                .then(|| DeliverySlot::take(&me.delivering));
                            let elsewhere = slot.as_ref().and(me.delivery_runtime.clone());
                            let me = me.clone();
                            let task = async move {
                                if let Err(e) = me.tijori.run_job(&me.id, job).await {
                                    error!(error = %format!("{e:#}"), "worker: could not record a job's outcome");
                                }
                                drop(slot);
                            };
                            match elsewhere {
                                Some(runtime) => running.spawn_on(task, &runtime),
                                None => running.spawn(task),
                            };
                        }
                    }
                    Err(e) => {
                        error!(error = %format!("{e:#}"), "worker: could not claim jobs");
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                Some(_) = running.join_next(), if !running.is_empty() => {
                    // Every job that has finished meanwhile too: one claim for all the
                    // free slots, not one write per slot.
                    while running.try_join_next().is_some() {}
                }
                // Saturated too: the loop goes round (claiming nothing) to note that the
                // worker lives, so that slow jobs holding every slot (a gateway that
                // answers late) do not read as a stuck worker on /readyz.
                _ = tokio::time::sleep(me.poll) => {}
                _ = me.tijori.jobs_queued.notified(), if !saturated => {}
            }
        }
        info!(worker = me.id, in_hand = running.len(), "worker stopping");
        while running.join_next().await.is_some() {}
    }
}

/// A delivery slot in use, given back when its task ends, however it ends.
struct DeliverySlot(Arc<AtomicUsize>);

impl DeliverySlot {
    fn take(in_use: &Arc<AtomicUsize>) -> DeliverySlot {
        in_use.fetch_add(1, Ordering::Relaxed);
        DeliverySlot(in_use.clone())
    }
}

impl Drop for DeliverySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An error as the operator should read it in a report: with its cause, which an
/// API answer keeps to the log.
fn describe(e: &crate::error::Error) -> String {
    match e {
        crate::error::Error::Internal(cause) => format!("internal error: {cause:#}"),
        other => other.to_string(),
    }
}

type Looked = std::result::Result<(tokio::task::Id, Result<Reconciled>), tokio::task::JoinError>;

/// Notes one finished lookup of a pass in its report.
fn record(
    report: &mut ReconcileReport,
    looking_at: &mut std::collections::HashMap<tokio::task::Id, PaymentId>,
    done: Looked,
) {
    let (task, outcome) = match done {
        Ok((task, outcome)) => (task, outcome.map_err(|e| describe(&e))),
        Err(e) => (e.id(), Err(format!("the lookup failed unexpectedly: {e}"))),
    };
    let Some(id) = looking_at.remove(&task) else {
        return;
    };
    match outcome {
        Ok(Reconciled::Changed(from, to)) => report.changed.push((id, from, to)),
        Ok(Reconciled::AlreadySettled(now)) => report.already_settled.push((id, now)),
        Ok(Reconciled::Unchanged) => {}
        Err(why) => report.failed.push((id, why)),
    }
}
