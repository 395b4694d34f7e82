//! The console over apalis' `Jobs` table in SQLite (apalis-sqlite 1.0's schema).
//!
//! apalis keeps one row per job with a status among `Pending`, `Queued`, `Running`, `Done`,
//! `Failed` and `Killed`; times are Unix seconds. They map onto the console's set so:
//!
//! | console | row |
//! |---|---|
//! | pending | `Pending`, due |
//! | scheduled | `Pending`, due later |
//! | running | `Queued` (taken by a worker) or `Running` |
//! | failed | `Failed` with attempts left (apalis takes it again) |
//! | dead | `Failed` out of attempts, or `Killed` |
//! | cancelled | `Killed` with [`CANCELLED`] as its result (apalis has no such status) |
//! | done | `Done` |
//!
//! Jobs pushed without a kind in their metadata (the run queue's) read as [`RUN_JOB_KIND`]
//! when they sit on the run queue. Every statement touches one job or one page.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value};

use super::{
    CancelOutcome, Job, JobPage, JobStatus, QueueSummary, RUN_JOB_KIND, Result, RetryOutcome,
};
use crate::{queue::redis::KIND_METADATA_KEY, runtime::RUN_QUEUE};

/// The result a console cancel leaves on the row, telling it from a job apalis killed.
pub const CANCELLED: &str = r#"{"Err":"cancelled from the job console"}"#;

/// How long a worker may stay silent and still count as seen (apalis' heartbeat is 5 s,
/// three missed ones make it dead).
const WORKER_TTL_SECS: i64 = 15;

/// The SQL condition of each status; `?` placeholders take [`Cond::values`].
struct Cond {
    sql: &'static str,
    values: Vec<Value>,
}

fn cond(status: JobStatus, now: i64) -> Cond {
    let (sql, values): (&'static str, Vec<Value>) = match status {
        JobStatus::Pending => ("status = 'Pending' AND run_at <= ?", vec![now.into()]),
        JobStatus::Scheduled => ("status = 'Pending' AND run_at > ?", vec![now.into()]),
        JobStatus::Running => ("status IN ('Queued', 'Running')", vec![]),
        JobStatus::Failed => ("status = 'Failed' AND attempts < max_attempts", vec![]),
        JobStatus::Dead => (
            "((status = 'Failed' AND attempts >= max_attempts) \
             OR (status = 'Killed' AND COALESCE(last_result, '') <> ?))",
            vec![CANCELLED.into()],
        ),
        JobStatus::Cancelled => (
            "status = 'Killed' AND last_result = ?",
            vec![CANCELLED.into()],
        ),
        JobStatus::Done => ("status = 'Done'", vec![]),
    };
    Cond { sql, values }
}

/// The order a status lists in (as the Redis queue's).
fn order(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "priority DESC, run_at ASC, id ASC",
        JobStatus::Running => "lock_at ASC, id ASC",
        JobStatus::Scheduled | JobStatus::Failed => "run_at ASC, id ASC",
        JobStatus::Dead | JobStatus::Done | JobStatus::Cancelled => "done_at DESC, id DESC",
    }
}

/// The kind of a row: its metadata's, else the run queue's.
fn kind_expr() -> String {
    format!(
        "COALESCE(CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.\"{KIND_METADATA_KEY}\"') END, \
         CASE WHEN job_type = '{RUN_QUEUE}' THEN '{RUN_JOB_KIND}' END)"
    )
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// The statuses in [`QueueSummary`]'s order.
const STATUSES: [JobStatus; 7] = [
    JobStatus::Pending,
    JobStatus::Running,
    JobStatus::Scheduled,
    JobStatus::Failed,
    JobStatus::Dead,
    JobStatus::Done,
    JobStatus::Cancelled,
];

/// Every queue (jobs' and workers') with its sizes.
pub async fn queues(db: &DatabaseConnection) -> Result<Vec<QueueSummary>> {
    let now = now();
    let sums: Vec<String> = STATUSES
        .into_iter()
        .map(|s| {
            format!(
                "COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0)",
                cond(s, now).sql
            )
        })
        .collect();
    // In the statement's order: the run queue's name, each sum's values, the worker cutoff.
    let mut values: Vec<Value> = vec![RUN_QUEUE.into()];
    for s in STATUSES {
        values.extend(cond(s, now).values);
    }
    values.push((now - WORKER_TTL_SECS).into());
    let sql = format!(
        "WITH names AS (SELECT job_type AS name FROM Jobs UNION SELECT worker_type FROM Workers \
         UNION SELECT ?) \
         SELECT names.name AS name, {sums}, \
         (SELECT COUNT(*) FROM Workers w WHERE w.worker_type = names.name AND w.last_seen >= ?) \
         FROM names LEFT JOIN Jobs ON Jobs.job_type = names.name GROUP BY names.name ORDER BY names.name",
        sums = sums.join(", ")
    );
    let rows = db.query_all_raw(stmt(&sql, values)).await?;
    rows.iter().map(summary).collect()
}

fn summary(row: &QueryResult) -> Result<QueueSummary> {
    let n = |i: usize| -> Result<u64> { Ok(row.try_get_by_index::<i64>(i)?.max(0) as u64) };
    Ok(QueueSummary {
        name: row.try_get_by_index(0)?,
        pending: n(1)?,
        running: n(2)?,
        scheduled: n(3)?,
        failed: n(4)?,
        dead: n(5)?,
        done: n(6)?,
        cancelled: n(7)?,
        workers: n(8)?,
    })
}

const COLUMNS: &str = "id, job_type, status, attempts, max_attempts, run_at, done_at, lock_by, \
                       last_result, job";

/// A page of `queue`'s jobs in `status`, from position `offset`.
pub async fn list(
    db: &DatabaseConnection,
    queue: &str,
    status: JobStatus,
    kind: Option<&str>,
    offset: u64,
    limit: usize,
) -> Result<JobPage> {
    let now = now();
    let c = cond(status, now);
    let mut values: Vec<Value> = vec![queue.into()];
    values.extend(c.values);
    let kind_filter = match kind {
        Some(k) => {
            values.push(k.into());
            format!(" AND {} = ?", kind_expr())
        }
        None => String::new(),
    };
    values.push((limit as i64 + 1).into());
    values.push((offset as i64).into());
    let sql = format!(
        "SELECT {COLUMNS}, {kind} AS kind FROM Jobs WHERE job_type = ? AND {cond}{kind_filter} \
         ORDER BY {order} LIMIT ? OFFSET ?",
        kind = kind_expr(),
        cond = c.sql,
        order = order(status),
    );
    let rows = db.query_all_raw(stmt(&sql, values)).await?;
    let more = rows.len() > limit;
    let jobs = rows
        .iter()
        .take(limit)
        .map(|r| job_of(r, now))
        .collect::<Result<Vec<_>>>()?;
    Ok(JobPage {
        next_cursor: more.then(|| (offset + limit as u64).to_string()),
        jobs,
    })
}

/// One job of `queue`.
pub async fn job(db: &DatabaseConnection, queue: &str, id: &str) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {COLUMNS}, {kind} AS kind FROM Jobs WHERE job_type = ? AND id = ?",
        kind = kind_expr()
    );
    let row = db
        .query_one_raw(stmt(&sql, vec![queue.into(), id.into()]))
        .await?;
    row.map(|r| job_of(&r, now())).transpose()
}

/// A job the actions can act on: done and cancelled jobs count as absent, as on Redis, which
/// keeps only their ids.
async fn live_job(db: &DatabaseConnection, queue: &str, id: &str) -> Result<Option<Job>> {
    Ok(job(db, queue, id)
        .await?
        .filter(|j| !matches!(j.status, JobStatus::Done | JobStatus::Cancelled)))
}

/// Dead, failed and scheduled jobs become pending now.
pub async fn retry(db: &DatabaseConnection, queue: &str, id: &str) -> Result<RetryOutcome> {
    let Some(found) = live_job(db, queue, id).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    if !matches!(
        found.status,
        JobStatus::Dead | JobStatus::Failed | JobStatus::Scheduled
    ) {
        return Ok(RetryOutcome::NotRetriable(found.status));
    }
    let now = now();
    // The status is checked again in the statement: a worker may have taken it meanwhile.
    let sql = format!(
        "UPDATE Jobs SET status = 'Pending', run_at = ?, lock_by = NULL, lock_at = NULL, \
         done_at = NULL, max_attempts = MAX(max_attempts, attempts + 1) \
         WHERE job_type = ? AND id = ? AND (({}) OR ({}) OR ({}))",
        cond(JobStatus::Dead, now).sql,
        cond(JobStatus::Failed, now).sql,
        cond(JobStatus::Scheduled, now).sql,
    );
    let mut values: Vec<Value> = vec![now.into(), queue.into(), id.into()];
    values.extend(cond(JobStatus::Dead, now).values);
    values.extend(cond(JobStatus::Scheduled, now).values);
    let done = db.execute_raw(stmt(&sql, values)).await?;
    if done.rows_affected() == 1 {
        return Ok(RetryOutcome::Retried { from: found.status });
    }
    Ok(match live_job(db, queue, id).await? {
        Some(now) => RetryOutcome::NotRetriable(now.status),
        None => RetryOutcome::NotFound,
    })
}

/// Pending, scheduled and failed jobs are marked cancelled; apalis never takes them again.
pub async fn cancel(db: &DatabaseConnection, queue: &str, id: &str) -> Result<CancelOutcome> {
    let sql = "UPDATE Jobs SET status = 'Killed', done_at = ?, last_result = ?, lock_by = NULL, \
               lock_at = NULL WHERE job_type = ? AND id = ? AND lock_by IS NULL \
               AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))";
    let now = now();
    let before = job(db, queue, id).await?;
    let values: Vec<Value> = vec![now.into(), CANCELLED.into(), queue.into(), id.into()];
    let done = db.execute_raw(stmt(sql, values)).await?;
    if done.rows_affected() == 1 {
        let from = before.map_or(JobStatus::Pending, |j| j.status);
        return Ok(CancelOutcome::Cancelled { from });
    }
    Ok(match live_job(db, queue, id).await? {
        None => CancelOutcome::NotFound,
        Some(j) if j.status == JobStatus::Running => CancelOutcome::Running,
        Some(j) => CancelOutcome::NotCancellable(j.status),
    })
}

fn status_of(
    row: &str,
    attempts: i64,
    max: i64,
    run_at: i64,
    result: Option<&str>,
    now: i64,
) -> JobStatus {
    match row {
        "Pending" if run_at > now => JobStatus::Scheduled,
        "Pending" => JobStatus::Pending,
        "Queued" | "Running" => JobStatus::Running,
        "Failed" if attempts < max => JobStatus::Failed,
        "Killed" if result == Some(CANCELLED) => JobStatus::Cancelled,
        "Done" => JobStatus::Done,
        _ => JobStatus::Dead,
    }
}

/// The error text of apalis' stored result (`{"Err": "…"}`), or the raw text.
fn error_of(result: Option<String>) -> Option<String> {
    let raw = result?;
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Object(map)) => match map.get("Err") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        },
        _ => Some(raw),
    }
}

fn secs(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t, 0))
}

/// When a ULID was made: its first 10 characters are milliseconds since the epoch.
fn ulid_time(id: &str) -> Option<DateTime<Utc>> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut ms: i64 = 0;
    for c in id.get(..10)?.bytes() {
        let digit = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())?;
        ms = ms * 32 + digit as i64;
    }
    DateTime::from_timestamp_millis(ms)
}

fn job_of(row: &QueryResult, now: i64) -> Result<Job> {
    let id: String = row.try_get("", "id")?;
    let status: String = row.try_get("", "status")?;
    let attempts: i64 = row.try_get("", "attempts")?;
    let max: i64 = row.try_get("", "max_attempts")?;
    let run_at: i64 = row.try_get("", "run_at")?;
    let result: Option<String> = row.try_get("", "last_result")?;
    let status = status_of(&status, attempts, max, run_at, result.as_deref(), now);
    let args: Option<Vec<u8>> = row.try_get("", "job")?;
    Ok(Job {
        created_at: ulid_time(&id),
        id,
        queue: row.try_get("", "job_type")?,
        kind: row.try_get("", "kind")?,
        status,
        attempts: attempts.max(0) as u32,
        max_attempts: max.max(0) as u32,
        last_error: error_of(result),
        run_at: secs(Some(run_at)),
        finished_at: secs(row.try_get("", "done_at")?),
        worker: if status == JobStatus::Running {
            row.try_get("", "lock_by")?
        } else {
            None
        },
        args: args.and_then(|a| serde_json::from_slice(&a).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_onto_the_console_statuses() {
        let s =
            |row, attempts, max, run_at, result| status_of(row, attempts, max, run_at, result, 100);
        assert_eq!(s("Pending", 0, 25, 100, None), JobStatus::Pending);
        assert_eq!(s("Pending", 0, 25, 101, None), JobStatus::Scheduled);
        assert_eq!(s("Queued", 0, 25, 0, None), JobStatus::Running);
        assert_eq!(s("Failed", 1, 25, 0, None), JobStatus::Failed);
        assert_eq!(s("Failed", 25, 25, 0, None), JobStatus::Dead);
        assert_eq!(s("Killed", 1, 25, 0, None), JobStatus::Dead);
        assert_eq!(s("Killed", 0, 25, 0, Some(CANCELLED)), JobStatus::Cancelled);
        assert_eq!(s("Done", 1, 25, 0, None), JobStatus::Done);
    }

    #[test]
    fn errors_and_ulid_times_are_read() {
        assert_eq!(
            error_of(Some(r#"{"Err":"boom"}"#.into())).as_deref(),
            Some("boom")
        );
        assert_eq!(error_of(Some(r#"{"Ok":null}"#.into())), None);
        assert_eq!(error_of(Some("plain".into())).as_deref(), Some("plain"));
        // Checked against apalis' own reading of the id: a ULID's first 48 bits.
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let apalis_ms = <apalis_core::task::task_id::TaskId as std::str::FromStr>::from_str(id)
            .unwrap()
            .as_ulid()
            .unwrap()
            .timestamp_ms();
        let t = ulid_time(id).unwrap();
        assert_eq!(t.timestamp_millis() as u64, apalis_ms);
        assert_eq!(t.timestamp_millis(), 1_469_922_850_259);
        assert_eq!(ulid_time("short"), None);
    }
}
