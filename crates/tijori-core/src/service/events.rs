//! Outgoing events: the merchant's webhook endpoints, and delivering each event to
//! them (the `deliver_event` job). The events themselves are written by the store,
//! with the changes that cause them.

use anyhow::anyhow;
use tracing::{info, warn};

use crate::account::{invalid, Username};
use crate::error::{Error, Result};
use crate::events::{
    self, Concerning, DeliveryAttempt, EventRenderer, EventSender, FinishedDelivery, Message,
    Subject, Wanted, WebhookEndpoint,
};
use crate::id::{EventId, WebhookEndpointId};
use crate::jobs::{DeliverEvent, Job, JobError};
use crate::store::{EndpointChange, OperatorEventKind};

use super::background::JobOutcome;
use super::*;

/// What makes and sends deliveries; without it, events are written but not sent.
#[derive(Clone)]
pub(super) struct EventDelivery {
    pub(super) renderer: Arc<dyn EventRenderer>,
    pub(super) sender: Arc<dyn EventSender>,
}

/// A new endpoint, as an operator asks for it.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    /// Where to POST; checked by the sender (`http(s)`, not private unless allowed).
    pub url: String,
    /// Which events it gets.
    pub wants: Wanted,
    /// The operator's words for it.
    pub description: String,
}

/// What to deliver again to an endpoint.
#[derive(Clone, Debug)]
pub enum Redeliver {
    /// This one event (even if it was delivered).
    Event(EventId),
    /// Every event from then on that it wants and did not receive.
    Since(DateTime<Utc>),
}

/// The longest description an endpoint may have.
const MAX_DESCRIPTION: usize = 500;

/// How many events one redelivery queues at most (a later call queues the rest).
pub const REDELIVER_BATCH: u32 = 10_000;

impl Tijori {
    /// Delivers events through `renderer` and `sender`; without them, events stay in
    /// the outbox and their delivery jobs fail (to be retried once configured).
    pub fn with_event_delivery(
        mut self,
        renderer: Arc<dyn EventRenderer>,
        sender: Arc<dyn EventSender>,
    ) -> Self {
        self.events = Some(EventDelivery { renderer, sender });
        self
    }

    fn event_sender(&self) -> Result<&EventDelivery> {
        self.events
            .as_ref()
            .ok_or_else(|| Error::Internal(anyhow!("no event sender is configured")))
    }

    async fn checked_url(&self, url: &str) -> Result<String> {
        self.event_sender()?
            .sender
            .check_url(url.trim())
            .await
            .map_err(|why| invalid("url", why).into())
    }

    fn checked_description(description: &str) -> Result<String> {
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid("description", "must be at most 500 characters").into());
        }
        Ok(description.to_owned())
    }

    /// Registers an endpoint, enabled; returns it with its secret, which is shown
    /// only now (and on rotation). The caller checks that the user is an admin.
    pub async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
    ) -> Result<(WebhookEndpoint, String)> {
        let url = self.checked_url(&new.url).await?;
        let description = Self::checked_description(&new.description)?;
        let secret = self.event_sender()?.sender.new_secret();
        let now = self.now();
        let endpoint = WebhookEndpoint {
            id: WebhookEndpointId::generate(),
            url,
            wants: new.wants,
            description,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_webhook_endpoint(&endpoint, &secret)
            .await?;
        info!(endpoint = %endpoint.id, url = %endpoint.url, "webhook endpoint created");
        Ok((endpoint, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        Ok(self.store.webhook_endpoints().await?)
    }

    /// One endpoint; `NotFound` for an unknown id.
    pub async fn webhook_endpoint(&self, id: &WebhookEndpointId) -> Result<WebhookEndpoint> {
        self.store
            .webhook_endpoint(id)
            .await?
            .map(|(e, _)| e)
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    /// Changes an endpoint (a new URL is checked as at creation).
    pub async fn update_webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
        mut change: EndpointChange,
    ) -> Result<WebhookEndpoint> {
        if let Some(url) = &change.url {
            change.url = Some(self.checked_url(url).await?);
        }
        if let Some(d) = &change.description {
            change.description = Some(Self::checked_description(d)?);
        }
        self.store
            .update_webhook_endpoint(id, &change, self.now())
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    /// Deletes an endpoint and what was recorded of its deliveries.
    pub async fn delete_webhook_endpoint(&self, id: &WebhookEndpointId) -> Result<()> {
        if !self.store.delete_webhook_endpoint(id).await? {
            return Err(Error::NotFound("webhook endpoint"));
        }
        info!(endpoint = %id, "webhook endpoint deleted");
        Ok(())
    }

    /// Gives an endpoint a new secret, returned (shown only now); for a day the old
    /// one signs too, so the receiver can switch without losing a delivery.
    pub async fn rotate_webhook_secret(&self, id: &WebhookEndpointId) -> Result<String> {
        let secret = self.event_sender()?.sender.new_secret();
        let now = self.now();
        let until = now + Duration::hours(events::EndpointSecrets::OVERLAP_HOURS);
        if !self
            .store
            .rotate_webhook_secret(id, &secret, until, now)
            .await?
        {
            return Err(Error::NotFound("webhook endpoint"));
        }
        info!(endpoint = %id, "webhook endpoint's secret rotated");
        Ok(secret)
    }

    /// Queues deliveries again to an enabled endpoint; returns how many were queued.
    pub async fn redeliver(&self, id: &WebhookEndpointId, what: Redeliver) -> Result<u64> {
        let endpoint = self.webhook_endpoint(id).await?;
        if !endpoint.enabled {
            return Err(Error::Conflict {
                code: "webhook_endpoint_disabled",
                message: "the endpoint is disabled: enable it first".into(),
            });
        }
        let now = self.now();
        match what {
            Redeliver::Event(event) => {
                let event = self
                    .store
                    .event(&event)
                    .await?
                    .ok_or(Error::NotFound("event"))?;
                Ok(self
                    .store
                    .queue_event_delivery(&event, Some(id), now)
                    .await?)
            }
            Redeliver::Since(since) => Ok(self
                .store
                .redeliver_undelivered(since, Some(id), REDELIVER_BATCH, now)
                .await?),
        }
    }

    /// The latest tries at an endpoint, newest first.
    pub async fn delivery_attempts(
        &self,
        id: &WebhookEndpointId,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>> {
        Ok(self.store.delivery_attempts(Some(id), None, limit).await?)
    }

    /// What a user holds, by username: the merchant's backend asking whether a
    /// customer is entitled (the same answer the customer gets for themselves).
    /// `NotFound` for an unknown user.
    pub async fn holding_of(&self, username: &str) -> Result<Option<Holding>> {
        let username = Username::parse(username).map_err(|_| Error::NotFound("user"))?;
        let (user, _) = self
            .store
            .user_credentials(&username)
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.my_holding(&user.id).await
    }

    /// Makes one try at delivering an event to an endpoint (a `deliver_event` job
    /// held by `worker`) and records it with the job's outcome, in one write: done
    /// when delivered, else queued again on the schedule of `events::RETRY_AFTER_SECS`
    /// (dead after the last), and says which. `Ok(None)` when there was nothing to
    /// try (the endpoint gone, disabled or no longer wanting the event): the caller
    /// ends the job; an
    /// `Err` when no try could be made (the store failed): the caller retries it.
    ///
    /// The body is made at the first try and kept with that try's record; every later
    /// try sends the kept one. (A process stopped between a first try and its record
    /// makes the body again at the next try, from the resource as it then stands; the
    /// `webhook-id` is the same, which is what receivers dedupe by.)
    pub(super) async fn deliver_event(
        &self,
        job: &Job,
        worker: &str,
    ) -> std::result::Result<Option<JobOutcome>, JobError> {
        let delivery: DeliverEvent = job.payload_as()?;
        let sending = self.event_sender().map_err(JobError::failed)?;
        let store = &self.store;
        let Some((endpoint, secrets)) = store
            .webhook_endpoint(&delivery.endpoint)
            .await
            .map_err(JobError::failed)?
        else {
            return Ok(None);
        };
        let Some(event) = store
            .event(&delivery.event)
            .await
            .map_err(JobError::failed)?
        else {
            warn!(event = %delivery.event, "a delivery names an event that is not stored");
            return Ok(None);
        };
        if !endpoint.enabled || !endpoint.wants.includes(event.kind) {
            return Ok(None);
        }
        let (body, first) = match event.body {
            Some(body) => (body, false),
            None => {
                let about = self.concerning(&event).await.map_err(JobError::failed)?;
                let data = sending.renderer.data(event.kind, &about, self.now());
                (events::body(&event, data), true)
            }
        };
        let now = self.now();
        let message = Message {
            id: &event.id,
            timestamp: now.timestamp(),
            body: &body,
            secrets: secrets.signing(now),
        };
        let sent = sending.sender.send(&endpoint.url, &message).await;
        let delivered = sent.delivered();
        let why = match (&sent.error, sent.http_status) {
            _ if delivered => String::new(),
            (Some(e), _) => e.clone(),
            (None, Some(status)) => format!("answered HTTP {status}"),
            (None, None) => "no answer".to_owned(),
        };
        let retry_at = job.kind.retry_at(job.attempts, job.max_attempts, now);
        let (failing_since, held) = store
            .finish_delivery(&FinishedDelivery {
                attempt: DeliveryAttempt {
                    event: event.id.clone(),
                    endpoint: endpoint.id.clone(),
                    attempt: job.attempts,
                    attempted_at: now,
                    http_status: sent.http_status,
                    duration_ms: sent.duration_ms,
                    response: sent.response,
                    error: sent.error,
                    delivered,
                },
                body: first.then_some(body),
                job: job.id,
                worker: worker.to_owned(),
                retry_at,
                error: format!("delivering {} to {}: {why}", event.id, endpoint.url),
            })
            .await
            .map_err(JobError::failed)?;
        if !held {
            // Its lease ran out and another worker took the job over; a delivery is
            // at least once, receivers dedupe by its id.
            warn!(job = job.id, event = %event.id, "a delivery finished after its lease was taken over");
        }
        if delivered {
            return Ok(Some(JobOutcome::Done));
        }
        // A delivery that gave up is not an operator's to retry one by one: its
        // endpoint is disabled (and an operator told) once it has failed for days,
        // and the admin redelivers what failed since then.
        warn!(event = %event.id, endpoint = %endpoint.id, attempts = job.attempts, error = %why, dead = retry_at.is_none(), "delivery failed");
        if events::should_disable(failing_since, self.now())
            && store
                .disable_failing_endpoint(
                    &endpoint.id,
                    &format!("every delivery failed for three days (the last: {why})"),
                    self.now(),
                )
                .await
                .map_err(JobError::failed)?
        {
            warn!(endpoint = %endpoint.id, url = %endpoint.url, "webhook endpoint disabled after three days of failures");
            store
                .record_operator_event(
                    OperatorEventKind::WebhookEndpointDisabled,
                    None,
                    &format!(
                        "Webhook endpoint {} ({}) was disabled: every delivery failed for three \
                         days (the last: {why}). Fix the receiver, enable the endpoint, then \
                         redeliver what it missed.",
                        endpoint.id, endpoint.url
                    ),
                    self.now(),
                )
                .await
                .map_err(JobError::failed)?;
        }
        Ok(Some(match retry_at {
            Some(_) => JobOutcome::Retry,
            None => JobOutcome::Dead,
        }))
    }

    /// Reads what an event's body shows, as it stands now.
    async fn concerning(&self, event: &events::Event) -> Result<Concerning> {
        let store = &self.store;
        let payment = match &event.payment {
            Some(id) => store.payment(id).await?,
            None => None,
        };
        let refund = match &event.refund {
            Some(id) => store.refund(id).await?,
            None => None,
        };
        let order_id = event
            .order
            .clone()
            .or_else(|| match payment.as_ref().map(|p| &p.purpose) {
                Some(crate::payment::Purpose::Order { order_id }) => Some(order_id.clone()),
                _ => None,
            });
        let order = match &order_id {
            Some(id) => store.order(id).await?,
            None => None,
        };
        let user_id = event
            .user
            .clone()
            .or_else(|| payment.as_ref().map(|p| p.user_id.clone()));
        let user = match &user_id {
            Some(id) => store.user(id).await?,
            None => None,
        };
        let subscription = match (event.kind.subject(), &user_id) {
            (Subject::Subscription, Some(id)) => self.my_holding(id).await?,
            _ => None,
        };
        Ok(Concerning {
            user,
            payment,
            order,
            refund,
            subscription,
        })
    }
}
