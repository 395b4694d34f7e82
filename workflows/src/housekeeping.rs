//! Scheduled upkeep as a workflow: delete expired refresh tokens, API keys and organization
//! keys, and prune finished runs past their retention.
//!
//! Every worker process runs a [`Scheduler`]; each period (hourly by default) every one of
//! them starts the `housekeeping` run of that period with the idempotency key of the period,
//! so exactly one run per period exists however many instances there are (the key is unique
//! for instance-wide runs), and the queue hands it to one worker.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_keys, enums::WorkflowStatus, organization_keys, refresh_tokens, workflow_runs};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use crate::{
    engine::{Engine, Registry, StartRun},
    flow::{RetryPolicy, Workflow},
};

/// The workflow's kind.
pub const KIND: &str = "housekeeping";

/// Input of a housekeeping run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Housekeeping {
    /// Finished runs older than this many seconds are deleted.
    pub run_retention_secs: u64,
}

/// Deletes expired refresh tokens, user API keys and organization keys; returns how many.
pub async fn sweep_expired(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let now = Utc::now();
    let tokens = refresh_tokens::Entity::delete_many()
        .filter(refresh_tokens::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let keys = api_keys::Entity::delete_many()
        .filter(api_keys::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let org_keys = organization_keys::Entity::delete_many()
        .filter(organization_keys::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(tokens.rows_affected + keys.rows_affected + org_keys.rows_affected)
}

/// Deletes runs (with their steps and logs) that finished before `before`; returns how many.
pub async fn prune_runs(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let pruned = workflow_runs::Entity::delete_many()
        .filter(workflow_runs::Column::FinishedAt.lt(before))
        .filter(workflow_runs::Column::Status.is_in([
            WorkflowStatus::Succeeded,
            WorkflowStatus::Failed,
            WorkflowStatus::Cancelled,
        ]))
        .exec(db)
        .await?;
    Ok(pruned.rows_affected)
}

/// Registers the housekeeping workflow.
pub fn register(registry: &mut Registry) {
    registry.register(
        Workflow::builder::<Housekeeping>(KIND)
            .step(
                "expired_credentials",
                |ctx, input: Housekeeping| async move {
                    let n = sweep_expired(ctx.engine.db()).await?;
                    ctx.info(format!(
                        "deleted {n} expired refresh tokens, API keys and organization keys"
                    ))
                    .await;
                    Ok(input)
                },
            )
            .retry(RetryPolicy::default().max_attempts(5))
            .step("old_runs", |ctx, input: Housekeeping| async move {
                let retention = chrono::Duration::seconds(input.run_retention_secs as i64);
                let n = prune_runs(ctx.engine.db(), Utc::now() - retention).await?;
                ctx.info(format!("pruned {n} finished runs")).await;
                Ok(n)
            })
            .retry(RetryPolicy::default().max_attempts(5))
            .build(),
    );
}

/// Starts the housekeeping run of each period.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Length of a period.
    pub period: Duration,
    /// Passed to each run.
    pub run_retention: Duration,
}

impl Scheduler {
    /// The idempotency key of the period holding `at`.
    pub fn period_key(&self, at: DateTime<Utc>) -> String {
        let period = self.period.as_secs().max(1) as i64;
        let start = at.timestamp().div_euclid(period) * period;
        let start = DateTime::from_timestamp(start, 0).unwrap_or(at);
        format!("{KIND}@{}", start.to_rfc3339())
    }

    /// Starts this period's run unless an instance already did; returns whether this call
    /// created it.
    pub async fn tick(&self, engine: &Engine) -> Result<bool, crate::EngineError> {
        let (_, created) = engine
            .start(StartRun {
                kind: KIND.into(),
                input: serde_json::to_value(Housekeeping {
                    run_retention_secs: self.run_retention.as_secs(),
                })
                .unwrap_or_default(),
                idempotency_key: Some(self.period_key(Utc::now())),
                ..Default::default()
            })
            .await?;
        Ok(created)
    }

    /// Ticks now and then every minute, forever (the task ends with the runtime).
    pub async fn run(self, engine: Engine) {
        let mut tick = tokio::time::interval(Duration::from_secs(60).min(self.period));
        loop {
            tick.tick().await;
            match self.tick(&engine).await {
                Ok(true) => tracing::info!("started this period's housekeeping run"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not start the housekeeping run"),
            }
        }
    }
}
