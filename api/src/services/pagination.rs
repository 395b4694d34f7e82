//! Keyset pagination over UUIDv7 ids: stable cursors, no OFFSET scans.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::Result;

/// One page to fetch, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Only ids greater than this.
    pub after: Option<Uuid>,
    /// Only ids smaller than this.
    pub before: Option<Uuid>,
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
    let mut items = query.limit(page.limit + 1).all(db).await?;
    let more = items.len() as u64 > page.limit;
    items.truncate(page.limit as usize);
    if page.backward {
        items.reverse();
        Ok(Page {
            items,
            has_previous_page: more,
            has_next_page: page.before.is_some(),
        })
    } else {
        Ok(Page {
            items,
            has_previous_page: page.after.is_some(),
            has_next_page: more,
        })
    }
}
