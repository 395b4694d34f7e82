//! Lists rendered straight to JSON, for responses that go out over HTTP.
//!
//! A [`PlainList`](super::plain::PlainList) whose every selected field is plain (the 750
//! servers and 300 labels of a fleet page) need not become a tree of `Value`s, one `IndexMap`,
//! key and string each, that is then serialized and dropped: it writes its JSON text at once
//! and hands it up as `Value::Binary`, which [`write_response`] copies into the response as
//! it is. Two conditions keep that exact:
//!
//! - the request carries [`Rendering`], which only the HTTP handlers add (they serialize with
//!   [`write_response`]; a subscription or any other serializer never sees such a value);
//! - the document selects no object or list twice under one key in any selection set
//!   ([`renders_lists`]): a list selected twice would have its two results merged, which
//!   JSON text cannot be. Such documents take the `Value` path throughout.
//!
//! Within a list, keys selected more than once through fragments are written once, as the
//! `Value` path merges them; a field or fragment with a directive, or a field with
//! arguments, sends the whole list down the `Value` path.
//!
//! A list may also select relation lists of its items whose own fields are all plain (a page's
//! node pools with their labels and servers): the type loads each such relation for the whole
//! list at once through the request's loaders ([`PlainFields::nested`]), one statement as the
//! per-item resolvers would batch it, and the children are written in place. The pools then
//! cost no future, context, `Value` or merge each, nor do their two lists. A relation the type
//! cannot load this way, or whose selection is not renderable in turn, sends the list down
//! the `Value` path, which loads it again.

use std::{
    borrow::Cow,
    collections::HashSet,
    sync::atomic::{AtomicU64, Ordering},
};

use async_graphql::{
    ContextSelectionSet, Positioned, Response, ServerError, ServerResult, Value,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
    resolver_utils::EnumType,
};
use futures_util::future::join_all;

use super::plain::{NestedLists, PlainFields, applies};

/// Request data: this response is serialized by [`write_response`].
pub struct Rendering;

static RENDERED: AtomicU64 = AtomicU64::new(0);
static NESTED: AtomicU64 = AtomicU64::new(0);
static PAGES: AtomicU64 = AtomicU64::new(0);

/// How many pages of items resolved one by one (a connection's nodes) this process has
/// rendered all at once ([`super::plain::PageItem`]).
pub fn rendered_pages() -> u64 {
    PAGES.load(Ordering::Relaxed)
}

/// How many lists this process has written as JSON text: the fast path is observable (tests
/// check that it is taken).
pub fn rendered_lists() -> u64 {
    RENDERED.load(Ordering::Relaxed)
}

/// How many relation lists (a node pool's servers, say) this process has loaded for a whole
/// rendered list at once and written into it.
pub fn nested_lists() -> u64 {
    NESTED.load(Ordering::Relaxed)
}

/// Whether lists of `document` may be rendered: no selection set, with the fragments it
/// spreads, selects one response key with a selection of its own (an object or a list)
/// twice.
pub fn renders_lists(document: &ExecutableDocument) -> bool {
    let sets = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set)
        .chain(document.fragments.values().map(|f| &f.node.selection_set));
    for set in sets {
        if !keys_unique(document, set, &mut HashSet::new(), 0) || !nested_unique(document, set) {
            return false;
        }
    }
    true
}

/// The fields' own selection sets, each checked on its own.
fn nested_unique(document: &ExecutableDocument, set: &Positioned<SelectionSet>) -> bool {
    set.node.items.iter().all(|item| match &item.node {
        Selection::Field(f) => {
            let sub = &f.node.selection_set;
            sub.node.items.is_empty()
                || (keys_unique(document, sub, &mut HashSet::new(), 0)
                    && nested_unique(document, sub))
        }
        Selection::InlineFragment(f) => nested_unique(document, &f.node.selection_set),
        Selection::FragmentSpread(_) => true,
    })
}

/// Adds the response keys of `set`'s fields with a selection of their own (fragments spread
/// in) to `seen`; `false` on a repeat.
/// Deep spreads count as a repeat: validation refuses cycles later, this must end first.
fn keys_unique<'a>(
    document: &'a ExecutableDocument,
    set: &'a Positioned<SelectionSet>,
    seen: &mut HashSet<&'a str>,
    depth: usize,
) -> bool {
    if depth > 16 {
        return false;
    }
    set.node.items.iter().all(|item| match &item.node {
        // A leaf selected twice answers the same value twice; only objects and lists merge.
        Selection::Field(f) => {
            f.node.selection_set.node.items.is_empty()
                || seen.insert(f.node.response_key().node.as_str())
        }
        Selection::InlineFragment(f) => {
            keys_unique(document, &f.node.selection_set, seen, depth + 1)
        }
        Selection::FragmentSpread(s) => document
            .fragments
            .get(&s.node.fragment_name.node)
            .is_none_or(|f| keys_unique(document, &f.node.selection_set, seen, depth + 1)),
    })
}

/// What each item of a list writes, in response order.
pub struct Plan<'a> {
    fields: Vec<Entry<'a>>,
    /// The items' GraphQL type name, for `__typename`.
    typename: Cow<'static, str>,
}

enum Entry<'a> {
    /// Response key and field name of a plain field (or `__typename`).
    Plain(&'a str, &'a str),
    /// Response key of a relation list, and its index in the list's loaded relations.
    Nested(&'a str, usize),
}

impl Entry<'_> {
    fn key(&self) -> &str {
        match self {
            Entry::Plain(key, _) | Entry::Nested(key, _) => key,
        }
    }
}

/// A relation list selected in a rendered list: its field name and selection, to load and
/// plan once the plan of the list itself is made.
type Relation<'a> = (&'a str, &'a Positioned<SelectionSet>);

/// Adds the fields of `set` for items like `first` to `plan_to`, and the relation lists it
/// selects (fields that are not plain) to `relations`, to be loaded for the whole list;
/// `None` if a field has arguments or a directive, or a relation is selected twice.
fn plan<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    first: &T,
    plan_to: &mut Plan<'a>,
    relations: &mut Vec<Relation<'a>>,
    scratch: &mut Vec<u8>,
) -> Option<()> {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(f) => {
                let (key, name) = (
                    f.node.response_key().node.as_str(),
                    f.node.name.node.as_str(),
                );
                if !f.node.directives.is_empty() || !f.node.arguments.is_empty() {
                    return None;
                }
                if let Some(earlier) = plan_to.fields.iter().find(|e| e.key() == key) {
                    // The same field again merges into the first; another under its key
                    // is a document validation refuses. A relation selected again would
                    // merge its selections: not rendered.
                    if !matches!(earlier, Entry::Plain(_, n) if *n == name) {
                        return None;
                    }
                    continue;
                }
                scratch.clear();
                if name == "__typename" || first.render(name, scratch) {
                    plan_to.fields.push(Entry::Plain(key, name));
                } else {
                    plan_to.fields.push(Entry::Nested(key, relations.len()));
                    relations.push((name, &f.node.selection_set));
                }
            }
            Selection::InlineFragment(f) => {
                if !f.node.directives.is_empty() {
                    return None;
                }
                let condition = f
                    .node
                    .type_condition
                    .as_ref()
                    .map(|c| c.node.on.node.as_str());
                if applies(ctx, first, condition) {
                    let set = &f.node.selection_set;
                    plan(ctx, set, first, plan_to, relations, scratch)?;
                }
            }
            Selection::FragmentSpread(s) => {
                if !s.node.directives.is_empty() {
                    return None;
                }
                let fragment = ctx.query_env.fragments.get(&s.node.fragment_name.node)?;
                let condition = fragment.node.type_condition.node.on.node.as_str();
                if applies(ctx, first, Some(condition)) {
                    let set = &fragment.node.selection_set;
                    plan(ctx, set, first, plan_to, relations, scratch)?;
                }
            }
        }
    }
    Some(())
}

/// A list's plan with the relation lists it names, loaded for the whole list and prepared
/// in turn: all that writing it needs.
pub struct Prepared<'a> {
    plan: Plan<'a>,
    nested: Vec<Box<dyn NestedLists + 'a>>,
}

/// Plans `set` for `items` and loads the relation lists it selects (each for all of `items`
/// at once, [`PlainFields::nested`], and prepared in turn). `None` if a selected field is
/// neither plain nor such a relation (or a relation's selection is not renderable), or if
/// there is no item to plan by; `Some(Err)` if loading a relation failed.
pub(super) async fn prepare<'a: 'i, 'i, T: PlainFields>(
    ctx: &'a ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    items: &'i [T],
) -> Option<ServerResult<Prepared<'a>>> {
    let first = items.first()?;
    let mut keys = Plan {
        fields: Vec::new(),
        typename: first.introspection_type_name(),
    };
    let mut relations = Vec::new();
    plan(ctx, set, first, &mut keys, &mut relations, &mut Vec::new())?;
    let mut nested = Vec::with_capacity(relations.len());
    if !relations.is_empty() {
        let loads = relations
            .iter()
            .map(|(name, set)| T::nested(ctx, items, name, set))
            .collect::<Option<Vec<_>>>()?;
        for loaded in join_all(loads).await {
            match loaded? {
                Ok(lists) => nested.push(lists),
                Err(e) => return Some(Err(e)),
            }
        }
        NESTED.fetch_add(nested.len() as u64, Ordering::Relaxed);
    }
    Some(Ok(Prepared { plan: keys, nested }))
}

/// Writes item `i` of `items` as a JSON object by `prepared` (made for `items`).
pub(super) fn write_item<T: PlainFields>(
    out: &mut Vec<u8>,
    items: &[T],
    i: usize,
    prepared: &Prepared<'_>,
) {
    let plan = &prepared.plan;
    out.push(b'{');
    for (j, entry) in plan.fields.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        write_str(out, entry.key());
        out.push(b':');
        match entry {
            Entry::Plain(_, "__typename") => write_str(out, &plan.typename),
            // Plain by name: what the first item rendered, every item renders.
            Entry::Plain(_, name) => {
                items[i].render(name, out);
            }
            Entry::Nested(_, k) => prepared.nested[*k].write(i, out),
        }
    }
    out.push(b'}');
}

/// Writes items `range` of `items` as a JSON array by `prepared` (made for `items`).
pub(super) fn write_items<T: PlainFields>(
    out: &mut Vec<u8>,
    items: &[T],
    range: std::ops::Range<usize>,
    prepared: &Prepared<'_>,
) {
    out.push(b'[');
    for i in range {
        if out.last() != Some(&b'[') {
            out.push(b',');
        }
        write_item(out, items, i, prepared);
    }
    out.push(b']');
}

/// The error of a relation list that failed to load, at `pos`.
pub(super) fn load_failed(e: impl std::fmt::Display, pos: async_graphql::Pos) -> ServerError {
    let e = crate::Error::Internal(anyhow::anyhow!("loading children: {e}"));
    async_graphql::Error::from(e).into_server_error(pos)
}

/// `items` as JSON text, if the request allows it and every field selected is plain or a
/// relation list that `T` loads for the whole list ([`prepare`]): `None` sends the list down
/// the `Value` path, `Some(Err)` if loading a relation failed.
pub(super) async fn render_list<T: PlainFields>(
    ctx: &ContextSelectionSet<'_>,
    items: &[T],
) -> Option<ServerResult<Value>> {
    ctx.data_opt::<Rendering>()?;
    let prepared = match prepare(ctx, ctx.item, items).await? {
        Ok(prepared) => prepared,
        Err(e) => return Some(Err(e)),
    };
    let mut out = Vec::with_capacity(items.len() * (2 + prepared.plan.fields.len() * 32));
    write_items(&mut out, items, 0..items.len(), &prepared);
    RENDERED.fetch_add(1, Ordering::Relaxed);
    Some(Ok(Value::Binary(out.into())))
}

/// Each of `items` as JSON text, planned and loaded for all of them at once, under the same
/// conditions as [`render_list`]: the items of a page, which async-graphql resolves one by
/// one (a connection's edges), rendered by the first of them ([`super::plain::PageItem`]).
pub(super) async fn render_items<T: PlainFields>(
    ctx: &ContextSelectionSet<'_>,
    items: &[T],
) -> Option<ServerResult<Vec<bytes::Bytes>>> {
    ctx.data_opt::<Rendering>()?;
    let prepared = match prepare(ctx, ctx.item, items).await? {
        Ok(prepared) => prepared,
        Err(e) => return Some(Err(e)),
    };
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        write_item(&mut out, items, i, &prepared);
        ends.push(out.len());
    }
    PAGES.fetch_add(1, Ordering::Relaxed);
    let out = bytes::Bytes::from(out);
    let mut start = 0;
    Some(Ok(ends
        .into_iter()
        .map(|end| {
            let item = out.slice(start..end);
            start = end;
            item
        })
        .collect()))
}

/// Writes `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes `s` as a JSON string, or `null`.
pub fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Writes the GraphQL name of `value` as a JSON string, as `Value::Enum` is written.
pub fn write_enum<T: EnumType>(out: &mut Vec<u8>, value: T) {
    match T::items().iter().find(|item| item.value == value) {
        Some(item) => write_str(out, item.name),
        None => out.extend_from_slice(b"null"),
    }
}

/// Writes an integer.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// Writes `value` as JSON, `Value::Binary` as the JSON text it holds.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Binary(json) => out.extend_from_slice(json),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
        Value::String(s) => write_str(out, s),
        Value::Enum(name) => write_str(out, name),
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// Writes `response` as async-graphql serializes it (`data`, then `extensions` and `errors`
/// when there are any), with rendered lists copied in.
pub fn write_response(out: &mut Vec<u8>, response: &Response) {
    out.extend_from_slice(b"{\"data\":");
    write_value(out, &response.data);
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        let _ = serde_json::to_writer(&mut *out, &response.extensions);
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        let _ = serde_json::to_writer(&mut *out, &response.errors);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn renders(query: &str) -> bool {
        renders_lists(&parse_query(query).unwrap())
    }

    #[test]
    fn documents_that_repeat_a_key_are_not_rendered() {
        assert!(renders("{ a { id name } b: a { id } }"));
        assert!(renders("{ a { ...F } } fragment F on A { id b { id } }"));
        assert!(!renders("{ a { id } a { name } }"));
        assert!(!renders("{ x { a { id } b: a { name } b { id } } }"));
        assert!(renders("{ a { id ...F } } fragment F on A { id }"));
        assert!(!renders(
            "{ a { ...F b { id } } } fragment F on A { b { name } }"
        ));
        assert!(!renders("{ a { ... on A { b { id } } b { name } } }"));
        // A cycle, which validation refuses after this: the check ends all the same.
        assert!(!renders("{ a { ...F } } fragment F on A { ...F }"));
    }

    #[test]
    fn values_are_written_as_serde_writes_them_and_binary_as_is() {
        let value = async_graphql::value!({
            "s": "a \"quoted\" line\n",
            "n": 3,
            "f": 1.5,
            "b": true,
            "z": null,
            "l": [1, "two"],
        });
        let mut out = Vec::new();
        write_value(&mut out, &value);
        assert_eq!(out, serde_json::to_vec(&value).unwrap());
        let mut out = Vec::new();
        write_value(
            &mut out,
            &Value::List(vec![Value::Binary(b"[{\"k\":1}]".to_vec().into())]),
        );
        assert_eq!(out, b"[[{\"k\":1}]]");
    }
}
