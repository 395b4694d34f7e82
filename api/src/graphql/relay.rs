//! Relay plumbing shared by every object and list: opaque global IDs, cursors, page
//! arguments and connections with a lazily counted `totalCount`.

use std::{fmt, sync::Arc};

use async_graphql::{
    ID, Object,
    connection::{Connection, CursorType, Edge, EmptyFields},
    futures_util::future::BoxFuture,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::{
    Error, Result,
    services::pagination::{Cursor, Ordering, Page, PageRequest},
};

/// The kinds of object reachable through `node(id)`. The name is part of every global ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Organization,
    User,
    Membership,
    ApiKey,
    OrganizationKey,
    AuditEntry,
    Cluster,
    NodePool,
    Server,
    SshKey,
    Credential,
    Domain,
    DnsRecord,
    LoadBalancer,
    WorkflowRun,
    WorkflowStep,
    WorkflowLog,
}

impl NodeKind {
    const ALL: &[NodeKind] = &[
        NodeKind::Organization,
        NodeKind::User,
        NodeKind::Membership,
        NodeKind::ApiKey,
        NodeKind::OrganizationKey,
        NodeKind::AuditEntry,
        NodeKind::Cluster,
        NodeKind::NodePool,
        NodeKind::Server,
        NodeKind::SshKey,
        NodeKind::Credential,
        NodeKind::Domain,
        NodeKind::DnsRecord,
        NodeKind::LoadBalancer,
        NodeKind::WorkflowRun,
        NodeKind::WorkflowStep,
        NodeKind::WorkflowLog,
    ];

    /// The GraphQL type name.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Organization => "Organization",
            NodeKind::User => "User",
            NodeKind::Membership => "Membership",
            NodeKind::ApiKey => "ApiKey",
            NodeKind::OrganizationKey => "OrganizationKey",
            NodeKind::AuditEntry => "AuditEntry",
            NodeKind::Cluster => "Cluster",
            NodeKind::NodePool => "NodePool",
            NodeKind::Server => "Server",
            NodeKind::SshKey => "SshKey",
            NodeKind::Credential => "Credential",
            NodeKind::Domain => "Domain",
            NodeKind::DnsRecord => "DnsRecord",
            NodeKind::LoadBalancer => "LoadBalancer",
            NodeKind::WorkflowRun => "WorkflowRun",
            NodeKind::WorkflowStep => "WorkflowStep",
            NodeKind::WorkflowLog => "WorkflowLog",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A global ID: base64url of `Type:uuid`. Opaque to clients, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalId {
    pub kind: NodeKind,
    pub id: Uuid,
}

impl GlobalId {
    /// Encodes the global ID of the `kind` object with database id `id`.
    pub fn encode(kind: NodeKind, id: Uuid) -> ID {
        ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
    }

    /// Writes the global ID of the `kind` object `id` as a JSON string, as [`Self::encode`]
    /// would give it, without allocating (lists of thousands of objects write one each).
    pub fn write_json(kind: NodeKind, id: Uuid, out: &mut Vec<u8>) {
        let name = kind.name().as_bytes();
        let mut raw = [0u8; 64 + uuid::fmt::Hyphenated::LENGTH];
        let len = name.len() + 1 + uuid::fmt::Hyphenated::LENGTH;
        raw[..name.len()].copy_from_slice(name);
        raw[name.len()] = b':';
        id.hyphenated().encode_lower(&mut raw[name.len() + 1..len]);
        let start = out.len();
        out.push(b'"');
        out.resize(start + 1 + base64::encoded_len(len, false).unwrap_or(0), 0);
        let written = URL_SAFE_NO_PAD
            .encode_slice(&raw[..len], &mut out[start + 1..])
            .unwrap_or(0);
        out.truncate(start + 1 + written);
        out.push(b'"');
    }

    /// Decodes any global ID; `field` names the argument in the error.
    pub fn decode(raw: &str, field: &str) -> Result<GlobalId> {
        let invalid = || Error::bad_input(field, format!("{raw:?} is not a valid ID"));
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (name, id) = text.split_once(':').ok_or_else(invalid)?;
        let kind = NodeKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(GlobalId { kind, id })
    }

    /// Decodes a global ID that must name a `kind` object, returning its database id.
    pub fn expect(raw: &str, kind: NodeKind, field: &str) -> Result<Uuid> {
        let global = Self::decode(raw, field)?;
        if global.kind != kind {
            return Err(Error::bad_input(
                field,
                format!("expected the ID of a {kind}, got one of a {}", global.kind),
            ));
        }
        Ok(global.id)
    }
}

/// A position in a list ordered by id (UUIDv7, so creation order).
#[derive(Debug, Clone, Copy)]
pub struct IdCursor(pub Uuid);

impl CursorType for IdCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
        let id = Uuid::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(IdCursor(id))
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

/// A position in a list with an [`Ordering`]: the ordering's name, the row's sort key and
/// its id, as base64url JSON. Opaque to clients.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OrderedCursor {
    #[serde(rename = "o")]
    pub ordering: String,
    #[serde(rename = "c")]
    pub cursor: Cursor,
}

impl CursorType for OrderedCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    fn encode_cursor(&self) -> String {
        // Serializing plain data into a Vec cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Page arguments of a connection field, as the client sent them.
#[derive(Debug, Default, Clone)]
pub struct PageArgs {
    /// Items after this cursor.
    pub after: Option<String>,
    /// Items before this cursor.
    pub before: Option<String>,
    /// The first N items (after `after`).
    pub first: Option<i32>,
    /// The last N items (before `before`).
    pub last: Option<i32>,
}

/// Items returned when neither `first` nor `last` is given (capped by the maximum).
pub const DEFAULT_PAGE_SIZE: u32 = 20;

impl PageArgs {
    /// Checks the arguments against the Relay rules and the page-size limit.
    pub fn parse(&self, max_page_size: u32) -> Result<PageRequest> {
        self.parse_with(max_page_size, |c| {
            IdCursor::decode_cursor(c).ok().map(|c| c.0)
        })
    }

    /// Like [`Self::parse`] for a list in `ordering`: cursors made under another ordering
    /// (or not made by us) are refused.
    pub fn parse_ordered<E: sea_orm::EntityTrait>(
        &self,
        max_page_size: u32,
        ordering: &Ordering<E>,
    ) -> Result<PageRequest<Cursor>> {
        self.parse_with(max_page_size, |c| {
            OrderedCursor::decode_cursor(c)
                .ok()
                .filter(|c| c.ordering == ordering.name() && ordering.accepts(&c.cursor))
                .map(|c| c.cursor)
        })
    }

    fn parse_with<C>(
        &self,
        max_page_size: u32,
        decode: impl Fn(&str) -> Option<C>,
    ) -> Result<PageRequest<C>> {
        let cursor = |raw: &Option<String>, field: &str| -> Result<Option<C>> {
            raw.as_deref()
                .map(|c| {
                    decode(c).ok_or_else(|| {
                        Error::bad_input(
                            field,
                            format!("{c:?} is not a valid cursor for this list and order"),
                        )
                    })
                })
                .transpose()
        };
        let size = |n: i32, field: &str| -> Result<u64> {
            if n < 0 {
                return Err(Error::bad_input(
                    field,
                    format!("{field} must not be negative"),
                ));
            }
            if n as u32 > max_page_size {
                return Err(Error::bad_input(
                    field,
                    format!("{field} must be at most {max_page_size}"),
                ));
            }
            Ok(n as u64)
        };
        let (limit, backward) = match (self.first, self.last) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_input(
                    "last",
                    "pass either first or last, not both",
                ));
            }
            (Some(n), None) => (size(n, "first")?, false),
            (None, Some(n)) => (size(n, "last")?, true),
            (None, None) => (DEFAULT_PAGE_SIZE.min(max_page_size) as u64, false),
        };
        Ok(PageRequest {
            after: cursor(&self.after, "after")?,
            before: cursor(&self.before, "before")?,
            limit,
            backward,
        })
    }
}

type CountFn = Arc<dyn Fn() -> BoxFuture<'static, Result<u64>> + Send + Sync>;

/// Fields every connection adds: `totalCount`, counted only when asked for.
pub struct ConnectionFields {
    count: CountFn,
}

impl ConnectionFields {
    /// `count` runs when a client selects `totalCount`.
    pub fn new<F, Fut>(count: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<u64>> + Send + 'static,
    {
        ConnectionFields {
            count: Arc::new(move || Box::pin(count())),
        }
    }
}

#[Object]
impl ConnectionFields {
    /// How many items the whole list holds, across all pages.
    async fn total_count(&self) -> Result<u64> {
        (self.count)().await
    }
}

/// A connection of `N` over ids.
pub type IdConnection<N> = Connection<IdCursor, N, ConnectionFields, EmptyFields>;

/// Builds a connection from a page of models.
pub fn connection<M, N>(
    page: Page<M>,
    fields: ConnectionFields,
    id_of: impl Fn(&M) -> Uuid,
    to_node: impl Fn(M) -> N,
) -> IdConnection<N>
where
    N: async_graphql::OutputType,
{
    let mut conn =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, fields);
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|m| Edge::new(IdCursor(id_of(&m)), to_node(m))),
    );
    conn
}

/// A connection of `N` in an [`Ordering`].
pub type OrderedConnection<N> = Connection<OrderedCursor, N, ConnectionFields, EmptyFields>;

/// Builds a connection from a page of models read in `ordering`.
pub fn ordered_connection<E, N>(
    page: Page<E::Model>,
    fields: ConnectionFields,
    ordering: &Ordering<E>,
    to_node: impl Fn(E::Model) -> N,
) -> OrderedConnection<N>
where
    E: sea_orm::EntityTrait,
    N: async_graphql::OutputType,
{
    ordered_connection_of(page, fields, ordering, |items| {
        items.into_iter().map(to_node).collect()
    })
}

/// As [`ordered_connection`], with the page's nodes made all at once by `to_nodes` (one per
/// model, in order): nodes that know their page ([`super::plain::PageItem`]).
pub fn ordered_connection_of<E, N>(
    page: Page<E::Model>,
    fields: ConnectionFields,
    ordering: &Ordering<E>,
    to_nodes: impl FnOnce(Vec<E::Model>) -> Vec<N>,
) -> OrderedConnection<N>
where
    E: sea_orm::EntityTrait,
    N: async_graphql::OutputType,
{
    let mut conn =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, fields);
    let cursors: Vec<OrderedCursor> = page
        .items
        .iter()
        .map(|m| OrderedCursor {
            ordering: ordering.name().to_owned(),
            cursor: ordering.cursor_of(m),
        })
        .collect();
    let nodes = to_nodes(page.items);
    debug_assert_eq!(nodes.len(), cursors.len());
    conn.edges.extend(
        cursors
            .into_iter()
            .zip(nodes)
            .map(|(cursor, node)| Edge::new(cursor, node)),
    );
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_written_as_json_are_the_encoded_ones() {
        for kind in NodeKind::ALL.iter().copied() {
            let id = Uuid::now_v7();
            let mut out = b"[".to_vec();
            GlobalId::write_json(kind, id, &mut out);
            assert_eq!(
                out,
                format!("[\"{}\"", GlobalId::encode(kind, id).0).into_bytes()
            );
        }
    }

    #[test]
    fn global_ids_round_trip_and_check_their_kind() {
        let id = Uuid::now_v7();
        let raw = GlobalId::encode(NodeKind::Organization, id);
        assert_eq!(
            GlobalId::expect(&raw, NodeKind::Organization, "id").unwrap(),
            id
        );
        assert!(GlobalId::decode("not-base64!", "id").is_err());
        let unknown = URL_SAFE_NO_PAD.encode(format!("Nope:{id}"));
        let err = GlobalId::decode(&unknown, "input.id").unwrap_err();
        assert_eq!(err.field(), Some("input.id"));
    }

    #[test]
    fn page_args_follow_the_rules() {
        let args = |first, last| PageArgs {
            first,
            last,
            ..Default::default()
        };
        assert_eq!(args(None, None).parse(100).unwrap().limit, 20);
        assert_eq!(args(None, None).parse(5).unwrap().limit, 5);
        assert!(args(Some(3), None).parse(100).unwrap().limit == 3);
        assert!(args(None, Some(3)).parse(100).unwrap().backward);
        assert_eq!(
            args(Some(-1), None).parse(100).unwrap_err().field(),
            Some("first")
        );
        assert_eq!(
            args(Some(101), None).parse(100).unwrap_err().field(),
            Some("first")
        );
        assert!(args(Some(1), Some(1)).parse(100).is_err());
        let bad_cursor = PageArgs {
            after: Some("zz".into()),
            ..Default::default()
        };
        assert_eq!(bad_cursor.parse(10).unwrap_err().field(), Some("after"));
    }

    #[test]
    fn ordered_cursors_round_trip_and_only_fit_their_ordering() {
        use crate::services::clusters::ClusterSort;
        use crate::services::{clusters::ordering, pagination::Direction};
        let by_name = ordering(Some(ClusterSort::Name), Direction::Asc);
        let cursor = OrderedCursor {
            ordering: by_name.name().to_owned(),
            cursor: Cursor {
                key: Some(crate::services::pagination::SortValue::Text("prod".into())),
                id: Uuid::now_v7(),
            },
        };
        let raw = cursor.encode_cursor();
        let after = |raw: &str| PageArgs {
            after: Some(raw.to_owned()),
            ..Default::default()
        };
        let parsed = after(&raw).parse_ordered(10, &by_name).unwrap();
        assert_eq!(parsed.after, Some(cursor.cursor.clone()));
        let by_time = ordering(Some(ClusterSort::CreatedAt), Direction::Asc);
        let err = after(&raw).parse_ordered(10, &by_time).unwrap_err();
        assert_eq!(err.field(), Some("after"));
        let desc = ordering(Some(ClusterSort::Name), Direction::Desc);
        assert!(after(&raw).parse_ordered(10, &desc).is_err());
        let id_cursor = IdCursor(Uuid::now_v7()).encode_cursor();
        assert!(after(&id_cursor).parse_ordered(10, &by_name).is_err());
    }
}
