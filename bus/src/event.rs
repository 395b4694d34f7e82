//! [`Event`]: what the bus carries.
//!
//! Events name what changed and carry the few fields a subscriber filters on; subscribers
//! load the rest themselves, through the same authorization as any read. They travel as
//! JSON between processes (`{"type": "workflow_run_updated", …}`), so renaming a variant or
//! a field is a wire change: processes of two versions side by side would skip each other's.

use entity::enums::WorkflowStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Something that happened, small enough to serialize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An organization was created.
    OrganizationCreated { organization_id: Uuid },
    /// A workflow run changed status.
    WorkflowRunUpdated {
        run_id: Uuid,
        organization_id: Option<Uuid>,
        cluster_id: Option<Uuid>,
        /// The workflow's name, e.g. `cluster_action`.
        kind: String,
        status: WorkflowStatus,
    },
    /// A step of a workflow run changed status or started another attempt.
    WorkflowStepUpdated {
        run_id: Uuid,
        organization_id: Option<Uuid>,
        step_id: Uuid,
        /// Order of the step in its run, from 0.
        position: i32,
        name: String,
        status: WorkflowStatus,
        attempt: i32,
    },
    /// A log line was recorded for a run (and one of its steps, when `step_id` is set).
    WorkflowLogAppended {
        run_id: Uuid,
        organization_id: Option<Uuid>,
        step_id: Option<Uuid>,
        log_id: Uuid,
        level: String,
        message: String,
    },
}

impl Event {
    /// The organization the event belongs to, if any: a subscriber shows an event only to
    /// viewers who may read that organization (`None` means instance-wide, e.g. scheduled
    /// clean-ups, which only instance admins see).
    pub fn organization_id(&self) -> Option<Uuid> {
        match self {
            Event::OrganizationCreated { organization_id } => Some(*organization_id),
            Event::WorkflowRunUpdated {
                organization_id, ..
            }
            | Event::WorkflowStepUpdated {
                organization_id, ..
            }
            | Event::WorkflowLogAppended {
                organization_id, ..
            } => *organization_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_are_tagged_json_and_round_trip() {
        let run_id = Uuid::now_v7();
        let org = Uuid::now_v7();
        let event = Event::WorkflowRunUpdated {
            run_id,
            organization_id: Some(org),
            cluster_id: None,
            kind: "cluster_action".into(),
            status: WorkflowStatus::Running,
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["type"], "workflow_run_updated");
        assert_eq!(wire["run_id"], json!(run_id));
        assert_eq!(wire["cluster_id"], json!(null));
        assert_eq!(serde_json::from_value::<Event>(wire).unwrap(), event);
    }

    #[test]
    fn organization_id_of_every_kind() {
        let (org, run) = (Uuid::now_v7(), Uuid::now_v7());
        let created = Event::OrganizationCreated {
            organization_id: org,
        };
        assert_eq!(created.organization_id(), Some(org));
        let step = Event::WorkflowStepUpdated {
            run_id: run,
            organization_id: Some(org),
            step_id: Uuid::now_v7(),
            position: 2,
            name: "join workers".into(),
            status: WorkflowStatus::Retrying,
            attempt: 3,
        };
        assert_eq!(step.organization_id(), Some(org));
        let log = Event::WorkflowLogAppended {
            run_id: run,
            organization_id: None,
            step_id: None,
            log_id: Uuid::now_v7(),
            level: "info".into(),
            message: "expired tokens removed".into(),
        };
        assert_eq!(log.organization_id(), None);
        let back: Event = serde_json::from_str(&serde_json::to_string(&step).unwrap()).unwrap();
        assert_eq!(back, step);
    }

    #[test]
    fn unknown_types_are_refused() {
        let e = serde_json::from_str::<Event>(r#"{"type":"from_the_future"}"#);
        assert!(e.is_err());
    }
}
