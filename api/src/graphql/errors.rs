//! The one place where errors become `extensions.code` on the wire.
//!
//! Resolvers return [`crate::Error`]; async-graphql keeps it as the `source` of the
//! `ServerError`. This extension reads it back and sets `code` (and `field`). Errors raised
//! by async-graphql itself carry no source: parse and validation failures are coded in their
//! hooks (`GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`); other errors without a path
//! concern the request (`BAD_USER_INPUT`), those with one are `INTERNAL_SERVER_ERROR`. Internal errors are logged here, with their whole chain.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
        NextValidation,
    },
    futures_util::stream::BoxStream,
    parser::types::ExecutableDocument,
};
use futures_util::StreamExt;

use crate::Error;

/// Extension factory registered on the schema.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| coded(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    // The limits get codes of their own, so clients can tell them apart.
                    let code = match e.message.as_str() {
                        "Query is nested too deep." => "QUERY_TOO_DEEP",
                        "Query is too complex." => "QUERY_TOO_COMPLEX",
                        _ => "GRAPHQL_VALIDATION_FAILED",
                    };
                    coded(e, code)
                })
                .collect()
        })
    }
}

/// Refuses documents with more aliases than the limit, before validation and execution:
/// aliases let one small document ask for the same expensive field many times.
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

fn count_aliases(set: &async_graphql::parser::types::SelectionSet, seen: &mut usize) {
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

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let mut seen = 0;
        for (_, op) in doc.operations.iter() {
            count_aliases(&op.node.selection_set.node, &mut seen);
        }
        for fragment in doc.fragments.values() {
            count_aliases(&fragment.node.selection_set.node, &mut seen);
        }
        if seen > self.0 {
            let message = format!(
                "the query uses {seen} aliases; at most {} are allowed",
                self.0
            );
            return Err(coded(ServerError::new(message, None), "TOO_MANY_ALIASES"));
        }
        Ok(doc)
    }
}

/// Sets `code` unless an inner hook already chose a more precise one.
fn coded(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", Value::from(code));
    }
    error
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
        // Before execution: a variable of the wrong type, an operation name that is missing.
        None => ("BAD_USER_INPUT", None),
    };
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", Value::from(code));
    if let Some(field) = field {
        extensions.set("field", Value::from(field));
    }
}
