//! The operator's use-cases: plans, the operator's list, jobs, unknown refunds and
//! webhook deliveries.

use crate::account::invalid;
use crate::error::{Error, Result};
use crate::store::{OperatorEvent, WebhookDelivery};
use crate::subscription::{NewPlan, Plan};

use super::*;

impl Tijori {
    // Operator's view ---------------------------------------------------------------
    /// The operator's list, newest first, at most 200: the unresolved events, or all
    /// with `include_resolved`. The caller checks that the user is an admin.
    pub async fn operator_events(&self, include_resolved: bool) -> Result<Vec<OperatorEvent>> {
        Ok(self.store.operator_events(include_resolved, 200).await?)
    }

    /// Marks an operator event handled (a second resolve keeps the first time);
    /// `NotFound` for an unknown id. The caller checks that the user is an admin.
    pub async fn resolve_operator_event(&self, id: i64) -> Result<()> {
        Ok(self.store.resolve_operator_event(id, self.now()).await?)
    }

    /// Background jobs in `status` (all when `None`), newest first.
    pub async fn jobs(
        &self,
        status: Option<crate::jobs::JobStatus>,
    ) -> Result<Vec<crate::jobs::Job>> {
        Ok(self.store.jobs(status, 200).await?)
    }

    /// Queues a dead job again (an operator's retry).
    pub async fn retry_job(&self, id: i64) -> Result<()> {
        self.store
            .retry_job(id, self.now())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => Error::Conflict {
                    code: "job_already_queued",
                    message: "the same work is already queued".into(),
                },
                other => other.into(),
            })
    }

    /// Refunds whose outcome is still unknown, oldest first (the operator's list).
    pub async fn unknown_refunds(&self) -> Result<Vec<crate::store::Refund>> {
        Ok(self.store.unknown_refunds(200).await?)
    }

    /// The latest 200 webhook deliveries, newest first. The caller checks that the user
    /// is an admin.
    pub async fn webhook_deliveries(&self) -> Result<Vec<WebhookDelivery>> {
        Ok(self.store.webhook_deliveries(200).await?)
    }

    // Plans ----------------------------------------------------------------------
    /// Adds a plan (the CLI's `plan create`): a name, 1 to [`MAX_PLAN_DAYS`] days and a
    /// price above zero. A plan cannot be edited or withdrawn afterwards.
    pub async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        if plan.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty").into());
        }
        // A century keeps the date arithmetic of every renewal far from overflow.
        if !(1..=MAX_PLAN_DAYS).contains(&plan.duration_days) {
            return Err(invalid("days", "must be from 1 to 36500").into());
        }
        if plan.price.minor() == 0 {
            return Err(invalid("price", "must be more than zero").into());
        }
        Ok(self.store.create_plan(plan, self.now()).await?)
    }
}
