//! The one place where errors become `extensions.code` on the wire.
//!
//! Resolvers return [`crate::Error`]; async-graphql keeps it as the `source` of the
//! `ServerError`. [`Served`] reads it back and sets `code` (and `field`). Errors raised
//! by async-graphql itself carry no source: parse and validation failures are coded in their
//! hooks (`GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`); other errors without a path
//! concern the request (`BAD_USER_INPUT`), those with one are `INTERNAL_SERVER_ERROR`. Internal errors are logged here, with their whole chain.

use std::{any::TypeId, future::Future, sync::Arc};

use async_graphql::{
    Data, Executor, Request, Response, ServerError, Value,
    futures_util::stream::{self, BoxStream},
    parser::{parse_query, types::SelectionSet},
};
use futures_util::StreamExt;

use crate::{
    Error,
    auth::socket_session::SocketSession,
    graphql::{
        AppSchema,
        rendered::{self, Rendering},
    },
};

/// The schema as served over HTTP and WebSocket: the alias limit is checked and error codes
/// are set around every execution.
///
/// This is a wrapper rather than an async-graphql extension on purpose: with any extension
/// registered, async-graphql resolves every field through the extension chain (a registry
/// lookup and boxed futures per field), which costs a large nested response dearly.
#[derive(Clone)]
pub struct Served {
    schema: AppSchema,
    max_aliases: usize,
}

impl Served {
    /// Serves `schema` with at most `max_aliases` aliases per document.
    pub fn new(schema: AppSchema, max_aliases: usize) -> Self {
        Served {
            schema,
            max_aliases,
        }
    }

    /// Refuses documents that do not parse or use too many aliases, before execution:
    /// aliases let one small document ask for the same expensive field many times. A document
    /// let through says whether its lists may be rendered ([`rendered::renders_lists`]).
    fn check(&self, query: &str) -> Result<bool, Box<Response>> {
        let doc = match parse_query(query) {
            Ok(doc) => doc,
            Err(e) => return Err(Box::new(refusal(e.to_string(), "GRAPHQL_PARSE_FAILED"))),
        };
        let mut seen = 0;
        for (_, op) in doc.operations.iter() {
            count_aliases(&op.node.selection_set.node, &mut seen);
        }
        for fragment in doc.fragments.values() {
            count_aliases(&fragment.node.selection_set.node, &mut seen);
        }
        if seen > self.max_aliases {
            let message = format!(
                "the query uses {seen} aliases; at most {} are allowed",
                self.max_aliases
            );
            return Err(Box::new(refusal(message, "TOO_MANY_ALIASES")));
        }
        Ok(rendered::renders_lists(&doc))
    }

    /// Executes a request whose response is written by [`rendered::write_response`] (the
    /// HTTP handlers): its plain lists may come back as JSON text.
    pub async fn execute_rendered(&self, request: Request) -> Response {
        match self.check(&request.query) {
            Ok(true) => with_codes(self.schema.execute(request.data(Rendering)).await),
            Ok(false) => with_codes(self.schema.execute(request).await),
            Err(refused) => *refused,
        }
    }
}

fn refusal(message: String, code: &str) -> Response {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(code));
    Response::from_errors(vec![error])
}

fn count_aliases(set: &SelectionSet, seen: &mut usize) {
    use async_graphql::parser::types::Selection;
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                *seen += usize::from(f.node.alias.is_some());
                count_aliases(&f.node.selection_set.node, seen);
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node, seen),
            Selection::FragmentSpread(_) => {}
        }
    }
}

impl Executor for Served {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        let checked = self.check(&request.query);
        let schema = self.schema.clone();
        async move {
            match checked {
                Ok(_) => with_codes(schema.execute(request).await),
                Err(refused) => *refused,
            }
        }
    }

    /// WebSocket operations: each one authorizes its socket's credential again
    /// ([`SocketSession::authorize`]) and runs as the caller is now, holding its place among
    /// the socket's operations until it ends.
    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Err(refused) = self.check(&request.query) {
            return stream::once(async move { *refused }).boxed();
        }
        let data = session_data.unwrap_or_default();
        let session = data
            .get(&TypeId::of::<Arc<SocketSession>>())
            .and_then(|d| d.downcast_ref::<Arc<SocketSession>>())
            .cloned();
        let schema = self.schema.clone();
        let Some(session) = session else {
            // No session (not a socket of ours): the operation runs anonymous.
            return schema
                .execute_stream_with_session_data(request, data)
                .map(with_codes)
                .boxed();
        };
        stream::once(async move {
            match session.authorize().await {
                Ok(op) => {
                    let request = request.data(op.viewer.clone());
                    schema
                        .execute_stream_with_session_data(request, data)
                        .map(move |response| {
                            let _running = &op;
                            with_codes(response)
                        })
                        .boxed()
                }
                Err(e) => stream::once(async move { error_response(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

/// A response of one error, coded as a resolver's would be.
fn error_response(e: Error) -> Response {
    if let Error::Internal(cause) = &e {
        tracing::error!(error = ?cause, "authorizing a WebSocket operation failed");
    }
    let code = e.code();
    let mut error = ServerError::new(e.to_string(), None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(code));
    Response::from_errors(vec![error])
}

fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        set_code(error);
    }
    response
}

fn set_code(error: &mut ServerError) {
    if error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
    {
        return;
    }
    let (code, field) = match error.source::<Error>() {
        Some(e) => {
            if let Error::Internal(cause) = e {
                tracing::error!(error = ?cause, path = ?error.path, "request failed");
            }
            (e.code(), e.field().map(str::to_owned))
        }
        None if !error.path.is_empty() => {
            tracing::error!(message = %error.message, path = ?error.path, "resolver failed");
            ("INTERNAL_SERVER_ERROR", None)
        }
        // Before execution: validation. The limits get codes of their own.
        None => match error.message.as_str() {
            "Query is nested too deep." => ("QUERY_TOO_DEEP", None),
            "Query is too complex." => ("QUERY_TOO_COMPLEX", None),
            _ => ("GRAPHQL_VALIDATION_FAILED", None),
        },
    };
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", Value::from(code));
    if let Some(field) = field {
        extensions.set("field", Value::from(field));
    }
}
