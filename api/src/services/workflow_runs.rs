//! Workflow runs as callers see them: listing and reading runs with their steps and logs,
//! starting, cancelling and retrying them through the engine, and deciding which run events a
//! subscriber may see.
//!
//! Invariants: a run of an organization is visible to its members only (another
//! organization's run reads as absent); an instance-wide run (no organization: scheduled
//! upkeep) is visible to instance admins only, checked against the `users` row in the same
//! statement, as memberships are. Starting, cancelling and retrying need the admin role in
//! the run's organization (instance admin for instance-wide runs) and are audited. Runs
//! started here always belong to an organization, and never run instance-only workflows.

use anyhow::Context;
use entity::{
    enums::MemberRole, enums::WorkflowStatus, users, workflow_logs, workflow_runs, workflow_steps,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait, Select, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;
use workflows::{EngineError, StartRun, housekeeping};

use crate::{
    Error, Result,
    bus::Event,
    services::{
        audit::{self, Audit},
        clusters,
        pagination::{
            Cursor, Direction, Ordering, Page, PageRequest, fetch_ordered_page, fetch_page,
        },
    },
    state::AppState,
    viewer::Viewer,
};

/// Workflows that only the instance starts (scheduled upkeep), never an organization.
const INSTANCE_ONLY: &[&str] = &[housekeeping::KIND];

/// The largest run input accepted, serialized.
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Whose runs to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunScope {
    /// One organization's (viewers and above).
    Organization(Uuid),
    /// Instance-wide runs (instance admins).
    Instance,
}

/// Which runs to list.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub kind: Option<String>,
    /// Any of these statuses (none: all).
    pub statuses: Vec<WorkflowStatus>,
    pub cluster_id: Option<Uuid>,
}

/// Runs are listed newest first: by id (UUIDv7, creation order), descending.
pub fn ordering() -> Ordering<workflow_runs::Entity> {
    Ordering::new(None, Direction::Desc, workflow_runs::Column::Id, |r| r.id)
}

/// The runs `viewer` may see: those of their organizations, and instance-wide ones for an
/// instance admin.
pub fn visible(viewer: &Viewer) -> Select<workflow_runs::Entity> {
    use workflow_runs::Column;
    let mut condition = Condition::any().add(viewer.visible_orgs(Column::OrganizationId));
    if let Viewer::User(user) = viewer {
        // Read with the runs, so an admin demoted a moment ago no longer sees them.
        let admin = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Id.eq(user.id))
            .filter(users::Column::IsAdmin.eq(true))
            .into_query();
        condition = condition.add(
            Condition::all()
                .add(Column::OrganizationId.is_null())
                .add(Expr::exists(admin)),
        );
    }
    workflow_runs::Entity::find().filter(condition)
}

fn filtered(viewer: &Viewer, scope: RunScope, filter: &RunFilter) -> Select<workflow_runs::Entity> {
    use workflow_runs::Column;
    let mut q = visible(viewer);
    q = match scope {
        RunScope::Organization(org) => q.filter(Column::OrganizationId.eq(org)),
        RunScope::Instance => q.filter(Column::OrganizationId.is_null()),
    };
    if let Some(kind) = &filter.kind {
        q = q.filter(Column::Kind.eq(kind.as_str()));
    }
    if !filter.statuses.is_empty() {
        q = q.filter(Column::Status.is_in(filter.statuses.clone()));
    }
    if let Some(cluster) = filter.cluster_id {
        q = q.filter(Column::ClusterId.eq(cluster));
    }
    q
}

fn check_scope(viewer: &Viewer, scope: RunScope) -> Result<()> {
    match scope {
        RunScope::Organization(org) => viewer.require_role(org, MemberRole::Viewer).map(|_| ()),
        RunScope::Instance => viewer.require_instance_admin().map(|_| ()),
    }
}

/// A page of runs, newest first (see [`ordering`]).
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    scope: RunScope,
    filter: &RunFilter,
    page: &PageRequest<Cursor>,
) -> Result<Page<workflow_runs::Model>> {
    check_scope(viewer, scope)?;
    let select = filtered(viewer, scope, filter);
    fetch_ordered_page(&state.db, select, &ordering(), page).await
}

/// How many runs match.
pub async fn count(
    state: &AppState,
    viewer: &Viewer,
    scope: RunScope,
    filter: &RunFilter,
) -> Result<u64> {
    Ok(filtered(viewer, scope, filter).count(&state.db).await?)
}

/// One run, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<workflow_runs::Model>> {
    Ok(visible(viewer)
        .filter(workflow_runs::Column::Id.eq(id))
        .one(db)
        .await
        .context("loading a workflow run")?)
}

/// A page of a run's log lines, in order. The run was read through [`find`] already.
pub async fn logs(
    state: &AppState,
    run_id: Uuid,
    page: &PageRequest,
) -> Result<Page<workflow_logs::Model>> {
    let select = workflow_logs::Entity::find().filter(workflow_logs::Column::RunId.eq(run_id));
    fetch_page(&state.db, select, workflow_logs::Column::Id, page).await
}

/// How many log lines a run has.
pub async fn count_logs(state: &AppState, run_id: Uuid) -> Result<u64> {
    Ok(workflow_logs::Entity::find()
        .filter(workflow_logs::Column::RunId.eq(run_id))
        .count(&state.db)
        .await?)
}

/// One step of a run (read through [`find`] already).
pub async fn find_step(
    state: &AppState,
    run_id: Uuid,
    step_id: Uuid,
) -> Result<Option<workflow_steps::Model>> {
    Ok(workflow_steps::Entity::find_by_id(step_id)
        .filter(workflow_steps::Column::RunId.eq(run_id))
        .one(&state.db)
        .await
        .context("loading a workflow step")?)
}

/// One log line of a run (read through [`find`] already).
pub async fn find_log(
    state: &AppState,
    run_id: Uuid,
    log_id: Uuid,
) -> Result<Option<workflow_logs::Model>> {
    Ok(workflow_logs::Entity::find_by_id(log_id)
        .filter(workflow_logs::Column::RunId.eq(run_id))
        .one(&state.db)
        .await
        .context("loading a workflow log line")?)
}

/// One step by id, if its run is visible (for `node(id)`).
pub async fn find_visible_step(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<workflow_steps::Model>> {
    Ok(workflow_steps::Entity::find_by_id(id)
        .filter(workflow_steps::Column::RunId.in_subquery(visible_ids(viewer)))
        .one(&state.db)
        .await
        .context("loading a workflow step")?)
}

/// One log line by id, if its run is visible (for `node(id)`).
pub async fn find_visible_log(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<workflow_logs::Model>> {
    Ok(workflow_logs::Entity::find_by_id(id)
        .filter(workflow_logs::Column::RunId.in_subquery(visible_ids(viewer)))
        .one(&state.db)
        .await
        .context("loading a workflow log line")?)
}

fn visible_ids(viewer: &Viewer) -> sea_orm::sea_query::SelectStatement {
    visible(viewer)
        .select_only()
        .column(workflow_runs::Column::Id)
        .into_query()
}

/// An idempotency key: 1 to 255 characters, no control characters. The same key (per
/// organization and kind) returns the run it started first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `raw`; errors name `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self> {
        let n = raw.chars().count();
        if n == 0 || n > 255 {
            return Err(Error::bad_input(field, "must be 1 to 255 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(Error::bad_input(
                field,
                "must not contain control characters",
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }
}

/// A run to start, its parts checked where they do not need the instance.
pub struct NewRun {
    pub kind: String,
    pub input: Value,
    pub cluster_id: Option<Uuid>,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Refuses kinds this instance does not run, and instance-only ones.
fn check_kind(state: &AppState, kind: &str, field: &str) -> Result<()> {
    if INSTANCE_ONLY.contains(&kind) {
        return Err(Error::bad_input(
            field,
            format!("{kind:?} runs are started by the instance, not by an organization"),
        ));
    }
    if state.engine.registry().get(kind).is_none() {
        let known: Vec<&str> = state
            .engine
            .registry()
            .kinds()
            .into_iter()
            .filter(|k| !INSTANCE_ONLY.contains(k))
            .collect();
        return Err(Error::bad_input(
            field,
            format!(
                "no workflow {kind:?} on this instance; known: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The engine's refusals in the API's terms; `field` names the argument a kind came from.
fn engine_error(e: EngineError, field: &str) -> Error {
    match e {
        EngineError::NotFound => Error::NotFound("workflow run"),
        EngineError::UnknownKind(kind) => Error::bad_input(
            field,
            format!("no workflow {kind:?} is registered on this instance"),
        ),
        EngineError::InvalidState(message) => Error::Conflict {
            field: None,
            message,
        },
        EngineError::Db(e) => e.into(),
        EngineError::Queue(cause) => {
            tracing::error!(%cause, "the job queue refused a workflow run");
            Error::Unavailable("the job queue is unavailable; try again later")
        }
    }
}

/// Starts a run in `org` (admins and above), or returns the run the same idempotency key
/// started before (`false`: not created now; its input is not compared).
pub async fn start(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewRun,
) -> Result<(workflow_runs::Model, bool)> {
    viewer.require_role(org, MemberRole::Admin)?;
    check_kind(state, &new.kind, "input.kind")?;
    if serde_json::to_vec(&new.input).map_or(0, |v| v.len()) > MAX_INPUT_BYTES {
        return Err(Error::bad_input(
            "input.input",
            format!("must be at most {MAX_INPUT_BYTES} bytes of JSON"),
        ));
    }
    if let Some(cluster) = new.cluster_id {
        let found = clusters::find(&state.db, viewer, cluster).await?;
        if found.is_none_or(|c| c.organization_id != org) {
            return Err(Error::bad_input(
                "input.clusterId",
                "no such cluster in this organization",
            ));
        }
    }
    let created_by = match viewer {
        Viewer::User(u) => Some(u.id),
        _ => None,
    };
    let request = StartRun {
        kind: new.kind,
        input: new.input,
        organization_id: Some(org),
        cluster_id: new.cluster_id,
        idempotency_key: new.idempotency_key.map(|k| k.0),
        created_by_user_id: created_by,
    };
    let (run, created) = state
        .engine
        .start(request)
        .await
        .map_err(|e| engine_error(e, "input.kind"))?;
    if created {
        let entry = Audit::new("workflow_run.start")
            .org(org)
            .target("workflow_run", run.id)
            .details(json!({ "kind": run.kind }));
        audit::record(&state.db, viewer, entry).await?;
    }
    Ok((run, created))
}

/// The run `id` if visible and the caller may act on it (admins of its organization,
/// instance admins for instance-wide runs).
async fn get_for_admin(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<workflow_runs::Model> {
    let run = find(&state.db, viewer, id)
        .await?
        .ok_or(Error::NotFound("workflow run"))?;
    match run.organization_id {
        Some(org) => viewer.require_role(org, MemberRole::Admin).map(|_| ())?,
        None => viewer.require_instance_admin().map(|_| ())?,
    }
    Ok(run)
}

async fn record(
    state: &AppState,
    viewer: &Viewer,
    action: &'static str,
    run: &workflow_runs::Model,
) -> Result<()> {
    let mut entry = Audit::new(action)
        .target("workflow_run", run.id)
        .details(json!({ "kind": run.kind }));
    if let Some(org) = run.organization_id {
        entry = entry.org(org);
    }
    audit::record(&state.db, viewer, entry).await
}

/// Cancels a run (admins): a queued or retrying run ends at once, a running one at its next
/// check. `CONFLICT` when it has finished already.
pub async fn cancel(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<workflow_runs::Model> {
    get_for_admin(state, viewer, id).await?;
    let run = state
        .engine
        .cancel(id)
        .await
        .map_err(|e| engine_error(e, "input.id"))?;
    record(state, viewer, "workflow_run.cancel", &run).await?;
    Ok(run)
}

/// Retries a failed or cancelled run from its first unfinished step (admins). `CONFLICT`
/// for a run in any other state.
pub async fn retry(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<workflow_runs::Model> {
    get_for_admin(state, viewer, id).await?;
    let run = state
        .engine
        .retry(id)
        .await
        .map_err(|e| engine_error(e, "input.id"))?;
    record(state, viewer, "workflow_run.retry", &run).await?;
    Ok(run)
}

/// What a bus event says about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChange {
    /// The run changed status.
    Run { status: WorkflowStatus },
    /// One of its steps changed status or started an attempt.
    Step {
        step_id: Uuid,
        status: WorkflowStatus,
    },
    /// A log line was added (by a step, when `step_id` is set).
    Log { log_id: Uuid, step_id: Option<Uuid> },
}

/// The run an event is about, its organization and the change; `None` for other events.
pub fn change_of(event: &Event) -> Option<(Uuid, Option<Uuid>, RunChange)> {
    Some(match event {
        Event::WorkflowRunUpdated {
            run_id,
            organization_id,
            status,
            ..
        } => (
            *run_id,
            *organization_id,
            RunChange::Run { status: *status },
        ),
        Event::WorkflowStepUpdated {
            run_id,
            organization_id,
            step_id,
            status,
            ..
        } => (
            *run_id,
            *organization_id,
            RunChange::Step {
                step_id: *step_id,
                status: *status,
            },
        ),
        Event::WorkflowLogAppended {
            run_id,
            organization_id,
            log_id,
            step_id,
            ..
        } => (
            *run_id,
            *organization_id,
            RunChange::Log {
                log_id: *log_id,
                step_id: *step_id,
            },
        ),
        _ => return None,
    })
}

/// The run of an event, read now for `viewer`: `None` when they may not see it (any more).
/// Called for every event and every subscriber, so a removed member stops receiving.
pub async fn authorize_event(
    state: &AppState,
    viewer: &Viewer,
    run_id: Uuid,
) -> Option<workflow_runs::Model> {
    match find(&state.db, viewer, run_id).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(error = %e, "dropping a run event that failed to load");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(IdempotencyKey::parse("deploy-42", "input.idempotencyKey").is_ok());
        let err = IdempotencyKey::parse("", "input.idempotencyKey").unwrap_err();
        assert_eq!(err.field(), Some("input.idempotencyKey"));
        assert!(IdempotencyKey::parse(&"k".repeat(256), "k").is_err());
        assert!(IdempotencyKey::parse("a\nb", "k").is_err());
    }

    #[test]
    fn run_events_are_read_and_others_ignored() {
        let (run, org) = (Uuid::now_v7(), Uuid::now_v7());
        let event = Event::WorkflowRunUpdated {
            run_id: run,
            organization_id: Some(org),
            cluster_id: None,
            kind: "test.sleep".into(),
            status: WorkflowStatus::Running,
        };
        assert_eq!(
            change_of(&event),
            Some((
                run,
                Some(org),
                RunChange::Run {
                    status: WorkflowStatus::Running
                }
            ))
        );
        let other = Event::OrganizationCreated {
            organization_id: org,
        };
        assert_eq!(change_of(&other), None);
    }

    #[test]
    fn queue_failures_do_not_leak_their_cause() {
        let e = engine_error(
            EngineError::Queue("redis://secret@host".into()),
            "input.kind",
        );
        assert_eq!(e.code(), "SERVICE_UNAVAILABLE");
        assert!(!e.to_string().contains("secret"));
        let e = engine_error(
            EngineError::InvalidState("the run is already succeeded".into()),
            "input.id",
        );
        assert_eq!(e.code(), "CONFLICT");
        let e = engine_error(EngineError::UnknownKind("nope".into()), "input.kind");
        assert_eq!(
            (e.code(), e.field()),
            ("BAD_USER_INPUT", Some("input.kind"))
        );
    }
}
