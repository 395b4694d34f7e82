//! Keyset pagination: stable cursors, no OFFSET scans. Lists ordered by their UUIDv7 ids
//! (creation order) use [`fetch_page`]; lists a client may order by a column use an
//! [`Ordering`] and [`fetch_ordered_page`], whose cursors carry the row's sort key and its id
//! (the tiebreaker), so a page boundary is exact even between rows with equal keys.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoSimpleExpr, Order,
    QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Expr, LikeExpr},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Result;

/// One page to fetch, already validated. `C` is the cursor: an id for lists ordered by id,
/// a [`Cursor`] for lists with an [`Ordering`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C = Uuid> {
    /// Only items after this one.
    pub after: Option<C>,
    /// Only items before this one.
    pub before: Option<C>,
    /// How many items at most.
    pub limit: u64,
    /// Take the last `limit` items instead of the first.
    pub backward: bool,
}

/// One page of items, in ascending id order, with Relay's page info.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

/// Fetches one page of `select` ordered by `id`, reading one extra row to learn whether
/// more follow. Relay lets a server answer `false` for the direction it did not page in
/// when that is costly to know; we answer whether a cursor was given in that direction.
pub async fn fetch_page<E, C>(
    db: &C,
    select: Select<E>,
    id: E::Column,
    page: &PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut query = select;
    if let Some(after) = page.after {
        query = query.filter(id.gt(after));
    }
    if let Some(before) = page.before {
        query = query.filter(id.lt(before));
    }
    query = if page.backward {
        query.order_by_desc(id)
    } else {
        query.order_by_asc(id)
    };
    let items = query.limit(page.limit + 1).all(db).await?;
    Ok(page_of(items, page))
}

/// The page in `items`, read with one row more than `page.limit` in the order of the read.
fn page_of<T, C>(mut items: Vec<T>, page: &PageRequest<C>) -> Page<T> {
    let more = items.len() as u64 > page.limit;
    items.truncate(page.limit as usize);
    if page.backward {
        items.reverse();
        Page {
            items,
            has_previous_page: more,
            has_next_page: page.before.is_some(),
        }
    } else {
        Page {
            items,
            has_previous_page: page.after.is_some(),
            has_next_page: more,
        }
    }
}

/// Which way an ordering runs.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "OrderDirection")]
pub enum Direction {
    /// Smallest first (A to Z, oldest first).
    #[default]
    Asc,
    /// Largest first (Z to A, newest first).
    Desc,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

/// The sort key of one row, as a cursor keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortValue {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

impl SortValue {
    fn kind(&self) -> SortKind {
        match self {
            SortValue::Text(_) => SortKind::Text,
            SortValue::Time(_) => SortKind::Time,
            SortValue::Int(_) => SortKind::Int,
        }
    }
}

impl From<SortValue> for sea_orm::Value {
    fn from(v: SortValue) -> Self {
        match v {
            SortValue::Text(s) => s.into(),
            SortValue::Time(t) => t.into(),
            SortValue::Int(i) => i.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKind {
    Text,
    Time,
    Int,
}

/// A position in an ordered list: the sort key of a row (none when the list is ordered by
/// id alone) and its id, which breaks ties between equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: Option<SortValue>,
    pub id: Uuid,
}

type KeyOf<M> = Box<dyn Fn(&M) -> SortValue + Send + Sync>;

/// A column (or expression) to order by, with the way to read its value off a model. The
/// expression must never be NULL: the keyset comparisons below do not handle NULLs.
pub struct SortKey<E: EntityTrait> {
    name: &'static str,
    expr: Expr,
    kind: SortKind,
    value_of: KeyOf<E::Model>,
}

impl<E: EntityTrait> SortKey<E> {
    /// A text key (compared with the database's collation, as `ORDER BY` does).
    pub fn text(name: &'static str, expr: impl IntoSimpleExpr, of: fn(&E::Model) -> &str) -> Self {
        Self::new(name, expr, SortKind::Text, move |m| {
            SortValue::Text(of(m).to_owned())
        })
    }

    /// A timestamp key.
    pub fn time(
        name: &'static str,
        expr: impl IntoSimpleExpr,
        of: fn(&E::Model) -> DateTime<Utc>,
    ) -> Self {
        Self::new(name, expr, SortKind::Time, move |m| SortValue::Time(of(m)))
    }

    /// An integer key, such as the rank of an enum value computed by a `CASE`.
    pub fn int(name: &'static str, expr: impl IntoSimpleExpr, of: fn(&E::Model) -> i64) -> Self {
        Self::new(name, expr, SortKind::Int, move |m| SortValue::Int(of(m)))
    }

    fn new(
        name: &'static str,
        expr: impl IntoSimpleExpr,
        kind: SortKind,
        value_of: impl Fn(&E::Model) -> SortValue + Send + Sync + 'static,
    ) -> Self {
        SortKey {
            name,
            expr: expr.into_simple_expr(),
            kind,
            value_of: Box::new(value_of),
        }
    }
}

/// How a list is ordered: by a [`SortKey`] then the id, or by the id alone, both in one
/// [`Direction`]. Its [`Ordering::name`] goes into every cursor, so a cursor made under one
/// ordering is refused under another instead of silently skipping rows.
pub struct Ordering<E: EntityTrait> {
    name: String,
    key: Option<SortKey<E>>,
    direction: Direction,
    id: E::Column,
    id_of: fn(&E::Model) -> Uuid,
}

impl<E: EntityTrait> Ordering<E> {
    /// Orders by `key` (none: by id alone), then by the `id` column, in `direction`.
    pub fn new(
        key: Option<SortKey<E>>,
        direction: Direction,
        id: E::Column,
        id_of: fn(&E::Model) -> Uuid,
    ) -> Self {
        let name = format!(
            "{}.{}",
            key.as_ref().map_or("id", |k| k.name),
            direction.as_str()
        );
        Ordering {
            name,
            key,
            direction,
            id,
            id_of,
        }
    }

    /// Names the ordering, such as `name.asc`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cursor of `model` in this ordering.
    pub fn cursor_of(&self, model: &E::Model) -> Cursor {
        Cursor {
            key: self.key.as_ref().map(|k| (k.value_of)(model)),
            id: (self.id_of)(model),
        }
    }

    /// Whether `cursor` has the shape of this ordering's cursors (a key of the right kind).
    pub fn accepts(&self, cursor: &Cursor) -> bool {
        self.key.as_ref().map(|k| k.kind) == cursor.key.as_ref().map(SortValue::kind)
    }

    /// Rows strictly after `cursor` in this ordering (`after`), or strictly before it.
    fn beyond(&self, cursor: &Cursor, after: bool) -> Condition {
        let greater = after == (self.direction == Direction::Asc);
        let past = |expr: Expr, value: sea_orm::Value| {
            if greater {
                expr.gt(value)
            } else {
                expr.lt(value)
            }
        };
        let id = self.id.into_simple_expr();
        match (&self.key, &cursor.key) {
            (Some(key), Some(value)) => Condition::any()
                .add(past(key.expr.clone(), value.clone().into()))
                .add(
                    Condition::all()
                        .add(key.expr.clone().eq(sea_orm::Value::from(value.clone())))
                        .add(past(id, cursor.id.into())),
                ),
            _ => Condition::all().add(past(id, cursor.id.into())),
        }
    }
}

/// Fetches one page of `select` in `ordering`, reading one extra row to learn whether more
/// follow (as [`fetch_page`] does). Items come in the ordering's order whichever way the
/// client paged. Cursors must have been checked with [`Ordering::accepts`].
pub async fn fetch_ordered_page<E, C>(
    db: &C,
    select: Select<E>,
    ordering: &Ordering<E>,
    page: &PageRequest<Cursor>,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut query = select;
    if let Some(after) = &page.after {
        query = query.filter(ordering.beyond(after, true));
    }
    if let Some(before) = &page.before {
        query = query.filter(ordering.beyond(before, false));
    }
    // Paging backward reads the ordering in reverse from the `before` cursor.
    let order = if (ordering.direction == Direction::Asc) != page.backward {
        Order::Asc
    } else {
        Order::Desc
    };
    if let Some(key) = &ordering.key {
        query = query.order_by(key.expr.clone(), order.clone());
    }
    query = query.order_by(ordering.id, order);
    let items = query.limit(page.limit + 1).all(db).await?;
    Ok(page_of(items, page))
}

/// `column LIKE 'prefix%'` with `%`, `_` and `\` in `prefix` matched literally.
pub fn starts_with(column: impl ColumnTrait, prefix: &str) -> Expr {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    column
        .into_simple_expr()
        .like(LikeExpr::new(pattern).escape('\\'))
}

#[cfg(test)]
mod tests {
    use entity::clusters;
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    fn by_name(direction: Direction) -> Ordering<clusters::Entity> {
        let key = SortKey::text("name", clusters::Column::Name, |c: &clusters::Model| {
            &c.name
        });
        Ordering::new(Some(key), direction, clusters::Column::Id, |c| c.id)
    }

    fn sql(ordering: &Ordering<clusters::Entity>, cursor: &Cursor, after: bool) -> String {
        clusters::Entity::find()
            .filter(ordering.beyond(cursor, after))
            .build(DbBackend::Postgres)
            .to_string()
    }

    #[test]
    fn keyset_conditions_compare_the_key_then_the_id() {
        let id = Uuid::nil();
        let cursor = Cursor {
            key: Some(SortValue::Text("m".into())),
            id,
        };
        let asc = by_name(Direction::Asc);
        assert_eq!(asc.name(), "name.asc");
        assert!(
            sql(&asc, &cursor, true).ends_with(&format!(
                r#"WHERE "clusters"."name" > 'm' OR ("clusters"."name" = 'm' AND "clusters"."id" > '{id}')"#
            )),
            "{}",
            sql(&asc, &cursor, true)
        );
        // Before a cursor in a descending order is after it in key order.
        let desc = by_name(Direction::Desc);
        assert!(sql(&desc, &cursor, false).contains(r#""clusters"."name" > 'm' OR"#));
        assert!(sql(&desc, &cursor, true).contains(r#""clusters"."id" < '"#));
    }

    #[test]
    fn cursors_must_have_the_shape_of_their_ordering() {
        let id = Uuid::nil();
        let asc = by_name(Direction::Asc);
        let text = Cursor {
            key: Some(SortValue::Text("a".into())),
            id,
        };
        let time = Cursor {
            key: Some(SortValue::Time(Utc::now())),
            id,
        };
        let bare = Cursor { key: None, id };
        assert!(asc.accepts(&text));
        assert!(!asc.accepts(&time) && !asc.accepts(&bare));
        let by_id =
            Ordering::<clusters::Entity>::new(None, Direction::Asc, clusters::Column::Id, |c| c.id);
        assert_eq!(by_id.name(), "id.asc");
        assert!(by_id.accepts(&bare) && !by_id.accepts(&text));
    }

    #[test]
    fn prefixes_match_like_wildcards_literally() {
        let sql = clusters::Entity::find()
            .filter(starts_with(clusters::Column::Name, r"a%b_c\d"))
            .build(DbBackend::Sqlite)
            .to_string();
        assert!(
            sql.ends_with(r#"WHERE "clusters"."name" LIKE 'a\%b\_c\\d%' ESCAPE '\'"#),
            "{sql}"
        );
    }
}
