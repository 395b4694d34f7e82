//! SQL for batches of rows: a `WITH v (…) AS (…)` source that is one JSON parameter on
//! PostgreSQL and a `VALUES` list on SQLite, and inserts and updates from it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use entity::WriteTxn as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value as SqlValue,
};
use serde_json::Value;
use uuid::Uuid;

/// A value of a row handed to [`insert_rows`] or [`update_rows`].
pub(super) enum Cell {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(i32),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
}

impl Cell {
    fn sql(self) -> SqlValue {
        match self {
            Cell::Uuid(v) => v.into(),
            Cell::Text(v) => v.into(),
            Cell::Int(v) => v.into(),
            Cell::Time(v) => v.into(),
            Cell::Json(v) => v.into(),
        }
    }

    fn json(self) -> Value {
        match self {
            Cell::Uuid(v) => v.map_or(Value::Null, |v| Value::String(v.to_string())),
            Cell::Text(v) => v.map_or(Value::Null, Value::String),
            Cell::Int(v) => Value::from(v),
            Cell::Time(v) => v.map_or(Value::Null, |v| {
                Value::String(v.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }),
            // As text, cast back in SQL: `json_to_record` reads a JSON `null` as SQL NULL,
            // which would lose a step's `null` output (or a run's `null` input).
            Cell::Json(v) => v.map_or(Value::Null, |v| Value::String(v.to_string())),
        }
    }
}

/// `INSERT INTO table (columns) SELECT columns FROM v`.
pub(super) fn insert_statement(table: &str, columns: &[(&str, &str)]) -> String {
    let names = columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO {table} ({names}) SELECT {names} FROM v")
}

/// Runs `statement`, which reads `v`, once per piece of `rows` that fits in one statement,
/// with `v` holding that piece under `columns`.
async fn over_rows(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
    statement: &str,
) -> Result<(), DbErr> {
    for rows in chunks(backend, columns.len(), rows) {
        db.execute_raw(over(backend, columns, rows, statement))
            .await?;
    }
    Ok(())
}

/// `statement`, which reads `v`, with `v` holding `rows` under `columns`.
fn over(
    backend: DbBackend,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
    statement: &str,
) -> Statement {
    let mut sql = Sql::new(backend);
    sql.with_rows(columns, rows);
    sql.text.push_str(statement);
    sql.statement()
}

/// `rows` in pieces that each fit in one statement: all of them on PostgreSQL (one JSON
/// parameter); on SQLite under its limit of 32,766 bind parameters per statement.
fn chunks(backend: DbBackend, columns: usize, mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Vec<Cell>>> {
    let per_statement = match backend {
        DbBackend::Postgres => usize::MAX,
        _ => (30_000 / columns.max(1)).max(1),
    };
    let mut pieces = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(per_statement.min(rows.len()));
        pieces.push(std::mem::replace(&mut rows, rest));
    }
    pieces
}

/// `UPDATE table SET assignments FROM v WHERE table.id = v.id`, where `v` holds `rows` under
/// `columns` (the first is `id`) and `assignments` refer to them as `v.name`.
pub(super) async fn update_rows(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    table: &str,
    columns: &[(&str, &str)],
    assignments: &str,
    rows: Vec<Vec<Cell>>,
) -> Result<(), DbErr> {
    over_rows(
        db,
        backend,
        columns,
        rows,
        &update_statement(table, assignments),
    )
    .await
}

/// `UPDATE table SET assignments FROM v WHERE table.id = v.id`.
pub(super) fn update_statement(table: &str, assignments: &str) -> String {
    format!("UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.id")
}

/// The statements of one commit, each over rows of its own (`v`), run as one unit.
///
/// On PostgreSQL they become one statement, each a data-modifying `WITH` query of it
/// (`WITH w0 AS (WITH v … UPDATE …), w1 AS (…) SELECT 1`): one round trip and an implicit
/// transaction instead of `BEGIN`, a round trip per statement and `COMMIT`. Its parts see the
/// same snapshot and none sees another's changes, so callers must not write one row twice
/// in a batch (foreign keys are checked at the end of the statement, so a row and rows that
/// refer to it can be inserted together). On SQLite (in process) they run one by one in a
/// write transaction, and so they do on PostgreSQL when the caller asks for it.
pub(super) struct Batch {
    backend: DbBackend,
    /// PostgreSQL, as one statement.
    one_statement: bool,
    /// PostgreSQL: the one statement so far.
    combined: Sql,
    parts: usize,
    /// SQLite: the statements.
    each: Vec<Statement>,
}

impl Batch {
    pub(super) fn new(backend: DbBackend, one_statement: bool) -> Self {
        Batch {
            backend,
            one_statement: one_statement && backend == DbBackend::Postgres,
            combined: Sql::new(backend),
            parts: 0,
            each: Vec::new(),
        }
    }

    /// Adds `statement`, which reads `v`, over `rows` under `columns`; nothing without rows.
    pub(super) fn add(&mut self, columns: &[(&str, &str)], rows: Vec<Vec<Cell>>, statement: &str) {
        for rows in chunks(self.backend, columns.len(), rows) {
            if self.one_statement {
                let sql = &mut self.combined;
                sql.text
                    .push_str(if self.parts == 0 { "WITH " } else { ", " });
                let _ = write!(sql.text, "w{} AS (", self.parts);
                sql.with_rows(columns, rows);
                sql.text.push_str(statement);
                sql.text.push(')');
                self.parts += 1;
            } else {
                self.each.push(over(self.backend, columns, rows, statement));
            }
        }
    }

    /// Adds `INSERT INTO table (columns)` of `rows`.
    pub(super) fn insert(&mut self, table: &str, columns: &[(&str, &str)], rows: Vec<Vec<Cell>>) {
        // Most kinds of record are absent from a batch: build no statement text for them.
        if !rows.is_empty() {
            self.add(columns, rows, &insert_statement(table, columns));
        }
    }

    /// Adds `UPDATE table SET assignments` of the rows with the ids of `rows` (the first of
    /// `columns`), whose values `assignments` read as `v.name`.
    pub(super) fn update(
        &mut self,
        table: &str,
        columns: &[(&str, &str)],
        assignments: &str,
        rows: Vec<Vec<Cell>>,
    ) {
        if !rows.is_empty() {
            self.add(columns, rows, &update_statement(table, assignments));
        }
    }

    /// Runs the statements as one unit (see [`Batch`]).
    pub(super) async fn run(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.one_statement {
            if self.parts == 0 {
                return Ok(());
            }
            let mut sql = self.combined;
            sql.text.push_str(" SELECT 1");
            db.execute_raw(sql.statement()).await?;
            return Ok(());
        }
        if self.each.is_empty() {
            return Ok(());
        }
        let txn = db.begin_write().await?;
        for statement in self.each {
            txn.execute_raw(statement).await?;
        }
        txn.commit().await
    }
}

/// SQL text with bind parameters numbered for the backend.
pub(super) struct Sql {
    backend: DbBackend,
    pub(super) text: String,
    values: Vec<SqlValue>,
}

impl Sql {
    pub(super) fn new(backend: DbBackend) -> Self {
        Sql {
            backend,
            text: String::with_capacity(512),
            values: Vec::new(),
        }
    }

    pub(super) fn bind(&mut self, value: impl Into<SqlValue>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    /// Appends `WITH v (columns) AS (rows) `. On PostgreSQL the whole set is one JSON
    /// parameter, so the statement's text (and its prepared plan) is the same whatever the
    /// number of rows; elsewhere (SQLite, in process, cheap to prepare) a `VALUES` list.
    pub(super) fn with_rows(&mut self, columns: &[(&str, &str)], rows: Vec<Vec<Cell>>) {
        let names = columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(self.text, "WITH v ({names}) AS (");
        let source = match self.backend {
            DbBackend::Postgres => {
                let set: Vec<Value> = rows
                    .into_iter()
                    .map(|row| {
                        Value::Object(
                            columns
                                .iter()
                                .zip(row)
                                .map(|((name, _), cell)| ((*name).to_owned(), cell.json()))
                                .collect(),
                        )
                    })
                    .collect();
                // As `json` text, not `jsonb`: PostgreSQL reads `json` as it comes, where
                // `jsonb` input builds a binary tree and sorts every row's keys first.
                let param = self.bind(Value::Array(set).to_string());
                let types = columns
                    .iter()
                    .map(|(name, ty)| match *ty {
                        "jsonb" => format!("{name} text"),
                        ty => format!("{name} {ty}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let select = columns
                    .iter()
                    .map(|(name, ty)| match *ty {
                        "jsonb" => format!("{name}::jsonb"),
                        _ => (*name).to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                // Not `jsonb_to_recordset($1)`: its estimate of 100 rows makes the generic plan
                // join a whole table by hash. `unnest` of an array is estimated at 10 rows, so
                // the rows are found through the primary key.
                format!(
                    "SELECT {select} FROM unnest(ARRAY(SELECT json_array_elements({param}::json))) \
                     AS e (j), LATERAL json_to_record(e.j) AS r ({types})"
                )
            }
            _ => {
                let mut values = String::from("VALUES ");
                for (i, row) in rows.into_iter().enumerate() {
                    values.push_str(if i == 0 { "(" } else { ", (" });
                    for (j, cell) in row.into_iter().enumerate() {
                        if j > 0 {
                            values.push_str(", ");
                        }
                        let placeholder = self.bind(cell.sql());
                        values.push_str(&placeholder);
                    }
                    values.push(')');
                }
                values
            }
        };
        self.text.push_str(&source);
        self.text.push_str(") ");
    }

    pub(super) fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Vec<Cell>> {
        (0..n).map(|i| vec![Cell::Int(i as i32)]).collect()
    }

    #[test]
    fn sqlite_statements_stay_under_its_parameter_limit_and_keep_every_row_in_order() {
        let pieces = chunks(DbBackend::Sqlite, 13, rows(5_000));
        assert!(
            pieces
                .iter()
                .all(|p| p.len() * 13 <= 30_000 && !p.is_empty())
        );
        let flat: Vec<i32> = pieces
            .into_iter()
            .flatten()
            .map(|row| match row.into_iter().next() {
                Some(Cell::Int(i)) => i,
                _ => -1,
            })
            .collect();
        assert_eq!(flat, (0..5_000).collect::<Vec<i32>>());
        assert_eq!(chunks(DbBackend::Postgres, 13, rows(5_000)).len(), 1);
        assert!(chunks(DbBackend::Sqlite, 13, rows(0)).is_empty());
    }

    #[test]
    fn a_postgres_batch_is_one_statement_and_sqlite_or_an_overlap_runs_one_by_one() {
        let parts = |batch: &mut Batch| {
            batch.add(
                &[("id", "integer")],
                rows(2),
                "DELETE FROM a USING v WHERE a.id = v.id",
            );
            batch.add(&[("id", "integer")], rows(0), "DELETE FROM b USING v");
            batch.add(
                &[("id", "integer")],
                rows(1),
                "DELETE FROM c USING v WHERE c.id = v.id",
            );
        };
        let mut pg = Batch::new(DbBackend::Postgres, true);
        parts(&mut pg);
        assert_eq!(pg.parts, 2, "a part without rows adds nothing");
        assert!(pg.each.is_empty());
        let text = &pg.combined.text;
        assert!(text.starts_with("WITH w0 AS (WITH v (id) AS ("), "{text}");
        assert!(text.contains("DELETE FROM a USING v WHERE a.id = v.id), w1 AS (WITH v (id)"));
        assert!(text.contains("$2") && !text.contains("$3") && !text.contains("FROM b"));
        assert_eq!(pg.combined.values.len(), 2, "one JSON parameter per part");

        for mut each in [
            Batch::new(DbBackend::Sqlite, true),
            Batch::new(DbBackend::Postgres, false),
        ] {
            parts(&mut each);
            assert_eq!((each.parts, each.each.len()), (0, 2));
        }
    }
}
