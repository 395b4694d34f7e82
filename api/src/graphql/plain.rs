//! Plain fields answered in place, not as a future each.
//!
//! async-graphql resolves every selected field of an object as a boxed future of its own,
//! polled through a `FuturesUnordered`, with a context built for it. For a list-heavy
//! response that is most of the server's work: the fleet read's 750 servers carry 3,750 of
//! its 5,600 fields, each of them a copy of a column. A type that implements
//! [`PlainFields`] answers its plain fields (no arguments, no I/O) synchronously while
//! walking the selection set; its other fields (relations) still go through its `#[Object]`
//! resolvers, concurrently, as before. Returning [`PlainList<T>`] instead of `Vec<T>`, or a
//! connection of [`PageItem<T>`]s instead of `T`s, from a resolver switches it on; the schema
//! does not change (each has the GraphQL type of what it replaces).
//!
//! What async-graphql does for a field and this keeps: `__typename`, aliases, fragments
//! (spreads and inline, with type conditions on the object, its interfaces or a union),
//! repeated response keys (objects merged), and the selection order of the response.
//! Fields carrying a custom directive take the resolver path (`@skip`/`@include` are gone
//! by execution).
//!
//! Over HTTP, a list whose selected fields are all plain, or relation lists of plain items
//! that its type can load for the whole list ([`PlainFields::nested`]), goes one step further
//! and is written as JSON text at once ([`super::rendered`]).

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult,
    Value,
    indexmap::IndexMap,
    parser::types::{Field, Selection, SelectionSet},
    registry::Registry,
};
use futures_util::future::BoxFuture;

use super::rendered::{Prepared, prepare, write_items};

/// An object type whose plain fields can be read without awaiting anything.
pub trait PlainFields: ContainerType {
    /// The value of the field with the GraphQL name `name` if it is plain; `None` sends the
    /// field to the type's `#[Object]` resolver. It must answer exactly what that resolver
    /// answers (tested per type against the resolver path).
    fn plain(&self, name: &str) -> Option<Value>;

    /// Writes the JSON of the plain field `name` to `out` and says `true`, or `false` if it
    /// is not plain; the same answer for every value of the type (see [`super::rendered`]).
    /// Types on hot lists write their fields without building a `Value` first.
    fn render(&self, name: &str, out: &mut Vec<u8>) -> bool {
        match self.plain(name) {
            Some(value) => {
                super::rendered::write_value(out, &value);
                true
            }
            None => false,
        }
    }

    /// For the relation list `name` (no arguments), the lists of all of `items`, loaded at
    /// once through the request's loaders and prepared for `set` ([`prepare_groups`]);
    /// `None` if `name` is not such a relation. A list of `Self` written as JSON text
    /// ([`super::rendered`]) with such a relation selected writes it in place instead of
    /// resolving it per item: one statement for the whole list, as the loaders would batch
    /// it, and no future, context or `Value` per item. The future answers `None` if `set`
    /// is not renderable.
    fn nested<'a: 'i, 'i>(
        _ctx: &'a ContextSelectionSet<'a>,
        _items: &'i [Self],
        _name: &str,
        _set: &'a Positioned<SelectionSet>,
    ) -> Option<NestedLoad<'a, 'i>>
    where
        Self: Sized,
    {
        None
    }
}

/// Loading a relation for a whole list ([`PlainFields::nested`]): the prepared lists, `None`
/// if the relation's selection is not renderable, or the error of a failed load.
pub type NestedLoad<'a, 'i> = BoxFuture<'i, Option<ServerResult<Box<dyn NestedLists + 'a>>>>;

/// The children of every item of a list under one relation (a page's node pools' servers),
/// loaded for the whole list at once and prepared for writing ([`super::rendered`]).
pub trait NestedLists: Send + Sync {
    /// Writes the children of item `i` of the list as a JSON array.
    fn write(&self, i: usize, out: &mut Vec<u8>);
}

/// The children of each item of a list, as one list of children and each parent's range of
/// it, prepared by `rendered::prepare` for the whole list of children at once.
struct Grouped<'a, C> {
    children: Vec<C>,
    bounds: Vec<std::ops::Range<usize>>,
    /// `None` when no parent has a child: every list is then empty, whatever is selected.
    prepared: Option<Prepared<'a>>,
}

impl<C: PlainFields + Send + Sync> NestedLists for Grouped<'_, C> {
    fn write(&self, i: usize, out: &mut Vec<u8>) {
        match (&self.prepared, self.bounds.get(i)) {
            (Some(prepared), Some(range)) => {
                write_items(out, &self.children, range.clone(), prepared)
            }
            _ => out.extend_from_slice(b"[]"),
        }
    }
}

/// The lists of `groups` (one per parent, in the parents' order) prepared for `set`:
/// `None` if the selection is not renderable, `Some(Err)` if a relation failed to load.
pub(super) async fn prepare_groups<'a, C: PlainFields + Send + Sync + 'a>(
    ctx: &'a ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    groups: Vec<Vec<C>>,
) -> Option<ServerResult<Box<dyn NestedLists + 'a>>> {
    let mut bounds = Vec::with_capacity(groups.len());
    let mut children = Vec::with_capacity(groups.iter().map(Vec::len).sum());
    for group in groups {
        let start = children.len();
        children.extend(group);
        bounds.push(start..children.len());
    }
    // Prepared through a borrow of the children, which it does not keep.
    let prepared = match prepare(ctx, set, &children).await {
        None if children.is_empty() => None,
        None => return None,
        Some(Ok(prepared)) => Some(prepared),
        Some(Err(e)) => return Some(Err(e)),
    };
    Some(Ok(Box::new(Grouped {
        children,
        bounds,
        prepared,
    })))
}

/// An item of a page of `T`s (a connection's node), resolved with its plain fields in place;
/// over HTTP the first item of the page to resolve renders every item for the same
/// selection at once ([`super::rendered::render_items`]: one plan, and each relation loaded
/// for the whole page), and the others take their text. async-graphql resolves a
/// connection's edges one by one, so a page of 50 clusters would otherwise be planned 50
/// times and ask for each relation 50 times.
pub struct PageItem<T> {
    page: Arc<PageItems<T>>,
    index: usize,
}

/// The items of a page, and their texts per selection set rendered so far (keyed by the
/// selection set's address: one per place the page's nodes are selected in the document).
struct PageItems<T> {
    items: Vec<T>,
    rendered: Mutex<HashMap<usize, Arc<Rendered>>>,
}

type Rendered = tokio::sync::OnceCell<Option<ServerResult<Vec<bytes::Bytes>>>>;

impl<T> PageItem<T> {
    /// The items of a page, each knowing the others.
    pub fn page(items: Vec<T>) -> Vec<PageItem<T>> {
        let page = Arc::new(PageItems {
            items,
            rendered: Mutex::default(),
        });
        (0..page.items.len())
            .map(|index| PageItem {
                page: page.clone(),
                index,
            })
            .collect()
    }
}

impl<T: PlainFields> OutputType for PageItem<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let items = &self.page.items;
        let cell = {
            let mut rendered = self.page.rendered.lock().expect("page lock");
            let key = std::ptr::from_ref(ctx.item) as usize;
            rendered.entry(key).or_default().clone()
        };
        let texts = cell
            .get_or_init(|| super::rendered::render_items(ctx, items))
            .await;
        match texts {
            Some(Ok(texts)) => Ok(Value::Binary(texts[self.index].clone())),
            Some(Err(e)) => Err(e.clone()),
            None => resolve(ctx, &items[self.index]).await,
        }
    }
}

/// Resolves `root`'s selection set: plain fields now, the others concurrently after.
async fn resolve<T: PlainFields>(ctx: &ContextSelectionSet<'_>, root: &T) -> ServerResult<Value> {
    let mut out = IndexMap::with_capacity(ctx.item.node.items.len());
    let mut deferred = Vec::new();
    collect(ctx, ctx.item, root, &mut out, &mut deferred)?;
    finish(ctx, root, &mut out, deferred).await;
    Ok(Value::Object(out))
}

/// Resolves the fields [`collect`] left to `root`'s resolvers, concurrently, into `out`.
async fn finish<T: PlainFields>(
    ctx: &ContextSelectionSet<'_>,
    root: &T,
    out: &mut IndexMap<Name, Value>,
    deferred: Deferred<'_>,
) {
    if deferred.is_empty() {
        return;
    }
    let results =
        futures_util::future::join_all(deferred.into_iter().map(|(key, field)| async move {
            let ctx_field = ctx.with_field(field);
            (key, root.resolve_field(&ctx_field).await)
        }))
        .await;
    for (key, result) in results {
        match result {
            Ok(value) => merge(out, key, value.unwrap_or_default()),
            Err(e) => ctx.add_error(e),
        }
    }
}

/// A list of `T`, each item resolved with its plain fields in place, without a future per
/// item: only the items that have fields left for a resolver get one (a page's 750 servers
/// selected for their columns get none). Its GraphQL type is `Vec<T>`'s.
pub struct PlainList<T>(pub Vec<T>);

impl<T> From<Vec<T>> for PlainList<T> {
    fn from(items: Vec<T>) -> Self {
        PlainList(items)
    }
}

impl<T: PlainFields> OutputType for PlainList<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if let Some(rendered) = super::rendered::render_list(ctx, &self.0).await {
            return rendered;
        }
        let mut values = Vec::with_capacity(self.0.len());
        let mut pending = Vec::new();
        for (idx, item) in self.0.iter().enumerate() {
            let mut out = IndexMap::with_capacity(ctx.item.node.items.len());
            let mut deferred = Vec::new();
            collect(ctx, ctx.item, item, &mut out, &mut deferred)?;
            if deferred.is_empty() {
                values.push(Value::Object(out));
            } else {
                values.push(Value::Null);
                pending.push((idx, item, out, deferred));
            }
        }
        if !pending.is_empty() {
            let done = futures_util::future::join_all(pending.into_iter().map(
                |(idx, item, mut out, deferred)| async move {
                    let ctx_item = ctx.with_index(idx);
                    finish(&ctx_item, item, &mut out, deferred).await;
                    (idx, Value::Object(out))
                },
            ))
            .await;
            for (idx, value) in done {
                values[idx] = value;
            }
        }
        Ok(Value::List(values))
    }
}

type Deferred<'a> = Vec<(Name, &'a Positioned<Field>)>;

fn collect<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    root: &T,
    out: &mut IndexMap<Name, Value>,
    deferred: &mut Deferred<'a>,
) -> ServerResult<()> {
    for selection in &set.node.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.clone();
                let name = field.node.name.node.as_str();
                if name == "__typename" {
                    let typename = root.introspection_type_name().into_owned();
                    out.insert(key, Value::String(typename));
                    continue;
                }
                let plain = (field.node.directives.is_empty() && field.node.arguments.is_empty())
                    .then(|| root.plain(name))
                    .flatten();
                match plain {
                    Some(value) => {
                        out.insert(key, value);
                    }
                    None => {
                        // Holds the field's place in the response until it resolves.
                        out.entry(key.clone()).or_insert(Value::Null);
                        deferred.push((key, field));
                    }
                }
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                let fragment = ctx.query_env.fragments.get(name).ok_or_else(|| {
                    ServerError::new(format!(r#"Unknown fragment "{name}"."#), Some(spread.pos))
                })?;
                let condition = fragment.node.type_condition.node.on.node.as_str();
                if applies(ctx, root, Some(condition)) {
                    collect(ctx, &fragment.node.selection_set, root, out, deferred)?;
                }
            }
            Selection::InlineFragment(fragment) => {
                let condition = fragment
                    .node
                    .type_condition
                    .as_ref()
                    .map(|c| c.node.on.node.as_str());
                if applies(ctx, root, condition) {
                    collect(ctx, &fragment.node.selection_set, root, out, deferred)?;
                }
            }
        }
    }
    Ok(())
}

/// Whether a fragment with type condition `condition` applies to `root`.
pub(super) fn applies<T: OutputType>(
    ctx: &ContextSelectionSet<'_>,
    root: &T,
    condition: Option<&str>,
) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    let name = root.introspection_type_name();
    name == condition
        || ctx
            .schema_env
            .registry
            .types
            .get(condition)
            .is_some_and(|ty| ty.is_possible_type(&name))
}

/// Puts a resolved field into the response; a key selected twice has its objects merged,
/// as async-graphql does.
fn merge(out: &mut IndexMap<Name, Value>, key: Name, value: Value) {
    match (out.get_mut(&key), value) {
        (Some(Value::Object(into)), Value::Object(from)) => {
            for (k, v) in from {
                merge(into, k, v);
            }
        }
        (Some(Value::List(into)), Value::List(from)) if into.len() == from.len() => {
            for (slot, v) in into.iter_mut().zip(from) {
                match (slot, v) {
                    (Value::Object(into), Value::Object(from)) => {
                        for (k, v) in from {
                            merge(into, k, v);
                        }
                    }
                    (slot, v) => *slot = v,
                }
            }
        }
        (Some(slot), value) => *slot = value,
        (None, value) => {
            out.insert(key, value);
        }
    }
}
