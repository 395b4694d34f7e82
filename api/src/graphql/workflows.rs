//! Workflow runs in GraphQL: runs with their steps and logs, starting, cancelling and
//! retrying them, and their progress live (subscriptions).

use async_graphql::{
    Context, Enum, ID, InputObject, Json, Object, SimpleObject, Subscription, futures_util::Stream,
};
use chrono::{DateTime, Utc};
use entity::{enums::WorkflowStatus, workflow_logs, workflow_runs, workflow_steps};
use futures_util::{StreamExt, stream, stream::BoxStream};
use serde_json::Value;
use uuid::Uuid;

use super::{
    fleet::{Cluster, IdInput, load},
    loaders::StepsOfRun,
    organizations::Organization,
    relay::{
        ConnectionFields, GlobalId, IdConnection, NodeKind, OrderedConnection, PageArgs,
        connection, ordered_connection,
    },
    state,
};
use crate::{
    Error, Result,
    services::{
        clusters as cluster_service, organizations as orgs,
        workflow_runs::{self as service, IdempotencyKey, NewRun, RunChange, RunFilter, RunScope},
    },
    state::AppState,
    viewer::{Viewer, viewer},
};

/// One run of a workflow: its input, where it is, what it produced.
#[derive(Clone)]
pub struct WorkflowRun(pub workflow_runs::Model);

#[Object]
impl WorkflowRun {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::WorkflowRun, self.0.id)
    }
    /// The workflow, e.g. `cluster_action`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn status(&self) -> WorkflowStatus {
        self.0.status
    }
    /// The owner; null for instance-wide runs (scheduled upkeep).
    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        let Some(org) = self.0.organization_id else {
            return Ok(None);
        };
        Ok(orgs::find_organization(state(ctx), viewer(ctx), org)
            .await?
            .map(Organization))
    }
    /// The cluster it works on (null once the cluster is deleted).
    async fn cluster(&self, ctx: &Context<'_>) -> Result<Option<Cluster>> {
        let Some(id) = self.0.cluster_id else {
            return Ok(None);
        };
        Ok(cluster_service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(Cluster))
    }
    /// What the first step was given.
    async fn input(&self) -> &Value {
        &self.0.input
    }
    /// What the last step returned, once the run succeeded.
    async fn output(&self) -> Option<&Value> {
        self.0.output.as_ref()
    }
    /// Why it failed, or is retrying.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// How many times a worker took it up (resumptions and retries included).
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }
    /// When cancellation was asked for.
    async fn cancel_requested_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancel_requested_at
    }
    /// When a retrying run's next attempt is due.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Its steps, in order.
    async fn steps(&self, ctx: &Context<'_>) -> Result<Vec<WorkflowStep>> {
        let mut steps = load(ctx, StepsOfRun(self.0.id)).await?;
        steps.sort_by_key(|s| s.position);
        Ok(steps
            .into_iter()
            .map(|step| WorkflowStep(std::sync::Arc::unwrap_or_clone(step)))
            .collect())
    }
    /// Its log, oldest first.
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<WorkflowLog>> {
        let state = state(ctx);
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let run_id = self.0.id;
        let items = service::logs(state, run_id, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let state = counting.clone();
            async move { service::count_logs(&state, run_id).await }
        });
        Ok(connection(items, fields, |l| l.id, WorkflowLog))
    }
}

/// One step of a run.
#[derive(Clone)]
pub struct WorkflowStep(pub workflow_steps::Model);

#[Object]
impl WorkflowStep {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::WorkflowStep, self.0.id)
    }
    /// Order in its run, from 0.
    async fn position(&self) -> i32 {
        self.0.position
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> WorkflowStatus {
        self.0.status
    }
    /// Attempts started so far.
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    /// What it returned (the next step's input).
    async fn output(&self) -> Option<&Value> {
        self.0.output.as_ref()
    }
    /// Why its last attempt failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// One line of a run's log.
#[derive(Clone)]
pub struct WorkflowLog(pub workflow_logs::Model);

impl WorkflowLog {
    async fn step(&self, ctx: &Context<'_>) -> Result<Option<workflow_steps::Model>> {
        let Some(id) = self.0.step_id else {
            return Ok(None);
        };
        let steps = load(ctx, StepsOfRun(self.0.run_id)).await?;
        Ok(steps
            .into_iter()
            .find(|s| s.id == id)
            .map(std::sync::Arc::unwrap_or_clone))
    }
}

#[Object]
impl WorkflowLog {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::WorkflowLog, self.0.id)
    }
    /// `info`, `warn` or `error`.
    async fn level(&self) -> &str {
        &self.0.level
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// The step that wrote it (null for lines of the run itself).
    async fn step_name(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.step(ctx).await?.map(|s| s.name))
    }
    /// The position of that step.
    async fn step_position(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self.step(ctx).await?.map(|s| s.position))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

fn opt_id(raw: Option<ID>, kind: NodeKind, field: &str) -> Result<Option<Uuid>> {
    raw.map(|id| GlobalId::expect(&id, kind, field)).transpose()
}

/// Which runs to list.
#[derive(InputObject, Default)]
pub struct WorkflowRunFilter {
    /// Runs of this workflow only.
    pub kind: Option<String>,
    /// Any of these statuses.
    #[graphql(default)]
    pub status: Vec<WorkflowStatus>,
    /// Runs on this cluster only.
    pub cluster_id: Option<ID>,
}

/// Whose runs: instance-wide ones, or an organization's (default: the active one).
fn scope(viewer: &Viewer, organization_id: Option<ID>, instance_wide: bool) -> Result<RunScope> {
    let org = opt_id(organization_id, NodeKind::Organization, "organizationId")?;
    match (instance_wide, org) {
        (true, Some(_)) => Err(Error::bad_input(
            "instanceWide",
            "pass either organizationId or instanceWide, not both",
        )),
        (true, None) => Ok(RunScope::Instance),
        (false, org) => Ok(RunScope::Organization(
            viewer.pick_org(org, "organizationId")?,
        )),
    }
}

#[derive(Default)]
pub struct WorkflowQuery;

#[Object]
impl WorkflowQuery {
    /// The workflow runs of an organization (default: the active one), or the instance-wide
    /// runs (`instanceWide`, instance admins), newest first.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn workflow_runs(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        #[graphql(default)] instance_wide: bool,
        filter: Option<WorkflowRunFilter>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<OrderedConnection<WorkflowRun>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let scope = scope(&viewer, organization_id, instance_wide)?;
        let ordering = service::ordering();
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse_ordered(state.config.graphql.max_page_size, &ordering)?;
        let filter = filter.unwrap_or_default();
        let filter = RunFilter {
            kind: filter.kind,
            statuses: filter.status,
            cluster_id: opt_id(filter.cluster_id, NodeKind::Cluster, "filter.clusterId")?,
        };
        let items = service::list(state, &viewer, scope, &filter, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer, filter) = (counting.clone(), viewer.clone(), filter.clone());
            async move { service::count(&state, &viewer, scope, &filter).await }
        });
        Ok(ordered_connection(items, fields, &ordering, WorkflowRun))
    }

    /// One run; null when it does not exist or is not visible to you.
    async fn workflow_run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<WorkflowRun>> {
        let id = GlobalId::expect(&id, NodeKind::WorkflowRun, "id")?;
        Ok(service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(WorkflowRun))
    }
}

/// Input of `startWorkflowRun`.
#[derive(InputObject)]
pub struct StartWorkflowRunInput {
    /// Default: the active organization.
    pub organization_id: Option<ID>,
    pub cluster_id: Option<ID>,
    /// A workflow this instance runs (instance-only ones such as `housekeeping` are refused).
    pub kind: String,
    /// The first step's input; default `{}`.
    pub input: Option<Json<Value>>,
    /// The same key (per organization and kind) returns the run it started first, with
    /// `created: false`; 1 to 255 characters.
    pub idempotency_key: Option<String>,
}

/// Result of `startWorkflowRun`.
#[derive(SimpleObject)]
pub struct StartWorkflowRunPayload {
    pub workflow_run: WorkflowRun,
    /// False when the idempotency key returned an earlier run.
    pub created: bool,
}

/// A payload holding a run.
#[derive(SimpleObject)]
pub struct WorkflowRunPayload {
    pub workflow_run: WorkflowRun,
}

#[derive(Default)]
pub struct WorkflowMutation;

#[Object]
impl WorkflowMutation {
    /// Starts a workflow run (admins); it is queued at once, progress comes by subscription.
    async fn start_workflow_run(
        &self,
        ctx: &Context<'_>,
        input: StartWorkflowRunInput,
    ) -> Result<StartWorkflowRunPayload> {
        let viewer = viewer(ctx);
        let org = opt_id(
            input.organization_id,
            NodeKind::Organization,
            "input.organizationId",
        )?;
        let org = viewer.pick_org(org, "input.organizationId")?;
        let new = NewRun {
            kind: input.kind,
            input: input
                .input
                .map_or_else(|| Value::Object(Default::default()), |j| j.0),
            cluster_id: opt_id(input.cluster_id, NodeKind::Cluster, "input.clusterId")?,
            idempotency_key: input
                .idempotency_key
                .map(|k| IdempotencyKey::parse(&k, "input.idempotencyKey"))
                .transpose()?,
        };
        let (run, created) = service::start(state(ctx), viewer, org, new).await?;
        Ok(StartWorkflowRunPayload {
            workflow_run: WorkflowRun(run),
            created,
        })
    }

    /// Cancels a run (admins): a queued one ends at once, a running one at its step's next
    /// check. CONFLICT once it has finished.
    async fn cancel_workflow_run(
        &self,
        ctx: &Context<'_>,
        input: IdInput,
    ) -> Result<WorkflowRunPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::WorkflowRun, "input.id")?;
        let run = service::cancel(state(ctx), viewer(ctx), id).await?;
        Ok(WorkflowRunPayload {
            workflow_run: WorkflowRun(run),
        })
    }

    /// Runs a failed or cancelled run again from its first unfinished step (admins); steps
    /// that succeeded are not repeated.
    async fn retry_workflow_run(
        &self,
        ctx: &Context<'_>,
        input: IdInput,
    ) -> Result<WorkflowRunPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::WorkflowRun, "input.id")?;
        let run = service::retry(state(ctx), viewer(ctx), id).await?;
        Ok(WorkflowRunPayload {
            workflow_run: WorkflowRun(run),
        })
    }
}

/// What a [`WorkflowRunEvent`] reports.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowEventType {
    /// The run changed status (or, first on `workflowRunUpdated`, the run as it is now).
    Run,
    /// A step changed status or started an attempt.
    Step,
    /// A log line was written.
    Log,
}

/// A change of a run. `status` is what the event announced (the run's for RUN, the step's
/// for STEP); `run`, `step` and `log` are read when the event is delivered, so they may be
/// further along.
pub struct WorkflowRunEvent {
    kind: WorkflowEventType,
    status: Option<WorkflowStatus>,
    run: workflow_runs::Model,
    step_id: Option<Uuid>,
    log_id: Option<Uuid>,
}

impl WorkflowRunEvent {
    fn new(change: RunChange, run: workflow_runs::Model) -> Self {
        let (kind, status, step_id, log_id) = match change {
            RunChange::Run { status } => (WorkflowEventType::Run, Some(status), None, None),
            RunChange::Step { step_id, status } => {
                (WorkflowEventType::Step, Some(status), Some(step_id), None)
            }
            RunChange::Log { log_id, step_id } => {
                (WorkflowEventType::Log, None, step_id, Some(log_id))
            }
        };
        WorkflowRunEvent {
            kind,
            status,
            run,
            step_id,
            log_id,
        }
    }
}

#[Object]
impl WorkflowRunEvent {
    #[graphql(name = "type")]
    async fn kind(&self) -> WorkflowEventType {
        self.kind
    }
    /// The status the event announced; null for LOG.
    async fn status(&self) -> Option<WorkflowStatus> {
        self.status
    }
    /// The run, as it is now.
    async fn run(&self) -> WorkflowRun {
        WorkflowRun(self.run.clone())
    }
    /// For STEP, the step; for LOG, the step that wrote the line (if any).
    async fn step(&self, ctx: &Context<'_>) -> Result<Option<WorkflowStep>> {
        let Some(step_id) = self.step_id else {
            return Ok(None);
        };
        Ok(service::find_step(state(ctx), self.run.id, step_id)
            .await?
            .map(WorkflowStep))
    }
    /// For LOG, the line.
    async fn log(&self, ctx: &Context<'_>) -> Result<Option<WorkflowLog>> {
        let Some(log_id) = self.log_id else {
            return Ok(None);
        };
        Ok(service::find_log(state(ctx), self.run.id, log_id)
            .await?
            .map(WorkflowLog))
    }
}

/// Run events from the bus that pass `wanted` (run id, organization), each authorized for
/// `viewer` when it arrives: the run is read again through the viewer's rights, so someone
/// who lost access stops receiving. The bus bounds what a slow subscriber may lag.
fn run_events(
    state: AppState,
    viewer: Viewer,
    wanted: impl Fn(Uuid, Option<Uuid>) -> bool + Send + Sync + 'static,
) -> BoxStream<'static, WorkflowRunEvent> {
    let wanted = std::sync::Arc::new(wanted);
    state
        .bus
        .subscribe()
        .filter_map(move |event| {
            let (state, viewer, wanted) = (state.clone(), viewer.clone(), wanted.clone());
            async move {
                let (run_id, org, change) = service::change_of(&event)?;
                if !wanted(run_id, org) {
                    return None;
                }
                let run = service::authorize_event(&state, &viewer, run_id).await?;
                Some(WorkflowRunEvent::new(change, run))
            }
        })
        .boxed()
}

#[derive(Default)]
pub struct WorkflowSubscription;

#[Subscription]
impl WorkflowSubscription {
    /// One run's progress: first the run as it is now (type RUN), then every change of the
    /// run, its steps and its log, in order.
    async fn workflow_run_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = WorkflowRunEvent> + use<>> {
        let id = GlobalId::expect(&id, NodeKind::WorkflowRun, "id")?;
        let (state, viewer) = (state(ctx).clone(), viewer(ctx).clone());
        // Subscribed before the run is read, so nothing between the two is missed.
        let events = run_events(state.clone(), viewer.clone(), move |run, _| run == id);
        let run = service::find(&state.db, &viewer, id)
            .await?
            .ok_or(Error::NotFound("workflow run"))?;
        let now = WorkflowRunEvent::new(RunChange::Run { status: run.status }, run);
        Ok(stream::once(async move { now }).chain(events))
    }

    /// Every run change of an organization (default: the active one), or of instance-wide
    /// runs (`instanceWide`, instance admins): runs, steps and log lines as they happen.
    async fn workflow_runs_updated(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        #[graphql(default)] instance_wide: bool,
    ) -> Result<impl Stream<Item = WorkflowRunEvent> + use<>> {
        let (state, viewer) = (state(ctx).clone(), viewer(ctx).clone());
        let wanted_org = match scope(&viewer, organization_id, instance_wide)? {
            RunScope::Organization(org) => {
                viewer.require_role(org, entity::enums::MemberRole::Viewer)?;
                Some(org)
            }
            RunScope::Instance => {
                viewer.require_instance_admin()?;
                None
            }
        };
        Ok(run_events(state, viewer, move |_, org| org == wanted_org))
    }
}
