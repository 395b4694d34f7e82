//! SQL for batches of rows: a `WITH v (…) AS (…)` source that is one JSON parameter on
//! PostgreSQL and a `VALUES` list on SQLite, and inserts and updates from it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value as SqlValue};
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
            // As text, cast back in SQL: `jsonb_to_recordset` reads a JSON `null` as SQL NULL,
            // which would lose a step's `null` output (or a run's `null` input).
            Cell::Json(v) => v.map_or(Value::Null, |v| Value::String(v.to_string())),
        }
    }
}

/// `INSERT INTO table (columns) …` of `rows` (values in `columns`' order).
pub(super) async fn insert_rows(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    table: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
) -> Result<(), DbErr> {
    let names = columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let statement = format!("INSERT INTO {table} ({names}) SELECT {names} FROM v");
    over_rows(db, backend, columns, rows, &statement).await
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
        let mut sql = Sql::new(backend);
        sql.with_rows(columns, rows);
        sql.text.push_str(statement);
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
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
    let statement = format!("UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.id");
    over_rows(db, backend, columns, rows, &statement).await
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
                let param = self.bind(Value::Array(set));
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
                    "SELECT {select} FROM unnest(ARRAY(SELECT jsonb_array_elements({param}))) \
                     AS e (j), LATERAL jsonb_to_record(e.j) AS r ({types})"
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
}
