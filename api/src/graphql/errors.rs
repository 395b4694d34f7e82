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
                .map(|e| coded(e, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }
}

fn coded(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", Value::from(code));
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
