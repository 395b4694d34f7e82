//! The GraphiQL explorer at `/graphiql`, self-contained: the page and its assets (GraphiQL 4's
//! and React 18's browser builds, vendored gzipped under `web/graphiql/` by its `vendor.sh`)
//! are compiled into the binary, so the explorer works where the server cannot reach the
//! internet, and loads nothing from a third party.
//!
//! Assets go out as they are stored, gzip-encoded; a client that does not accept gzip (no
//! browser) is answered 406.

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// One embedded asset.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    gzipped: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            gzipped: include_bytes!(concat!("../../../web/graphiql/", $name, ".gz")),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("graphiql.min.js", "text/javascript; charset=utf-8"),
    asset!("graphiql.min.css", "text/css; charset=utf-8"),
    asset!("react.production.min.js", "text/javascript; charset=utf-8"),
    asset!(
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8"
    ),
];

/// `GET /graphiql`: the explorer, queries and subscriptions at `/graphql` on this origin.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("graphiql.html"))
}

/// `GET /graphiql/assets/{name}`: one of the page's assets.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !accepts_gzip(headers.get(header::ACCEPT_ENCODING)) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "GraphiQL's assets are served gzip-encoded only",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::VARY, "accept-encoding"),
        ],
        asset.gzipped,
    )
        .into_response()
}

/// Whether an `Accept-Encoding` value admits gzip (`gzip` or `*`, not at `q=0`).
fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        accepts_gzip(Some(&HeaderValue::from_str(value).unwrap()))
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        assert!(accepts("gzip, deflate, br"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn every_asset_is_a_gzip_stream() {
        for asset in ASSETS {
            assert_eq!(&asset.gzipped[..2], &[0x1f, 0x8b], "{}", asset.name);
        }
    }
}
