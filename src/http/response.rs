//! Responses the HTTP layer builds, and [`Rejection`]: every way the hub
//! refuses a request, as one typed error that knows its HTTP status and, for
//! the MCP routes, its JSON-RPC code, and renders itself.

use crate::jsonrpc::{BodyError, Message, INVALID_REQUEST, UPSTREAM_ERROR};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;

/// The JSON-RPC code of a refusal for a caller over its own limits.
pub const RATE_LIMITED: i64 = -32005;

/// `body`, keeping `guard` alive until the body is sent or dropped (a
/// request counts as in flight while its answer streams).
pub fn hold<G: Send + Unpin + 'static>(body: Body, guard: G) -> Body {
    struct Held<G> {
        inner: Body,
        _guard: G,
    }
    impl<G: Send + Unpin + 'static> hyper::body::Body for Held<G> {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            // Unpin: the body is boxed and the guard is never pinned.
            let this = self.get_mut();
            std::pin::Pin::new(&mut this.inner).poll_frame(cx)
        }
        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            self.inner.size_hint()
        }
    }
    Held {
        inner: body,
        _guard: guard,
    }
    .boxed_unsync()
}

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A JSON body the caller already serialized.
pub fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// One JSON-RPC message as a JSON response, written straight from its raw parts.
pub fn message_response(status: StatusCode, m: &Message) -> Response<Body> {
    bytes_response(status, m.to_bytes())
}

/// Why the hub refused a request.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    /// A good identity provider token without the scopes configured (the scopes).
    #[error("the token lacks the scope {0:?} (mcpProxy.options.oidc.scopes)")]
    InsufficientScope(String),
    #[error("no rule of mcpProxy.options.oidc.rules admits this caller")]
    NoRule,
    #[error("origin {0:?} is not allowed; add it to mcpProxy.options.allowedOrigins")]
    Origin(String),
    #[error("host {0:?} is not allowed; add it to mcpProxy.options.allowedHosts")]
    Host(String),
    #[error("no server named {0:?} is configured")]
    UnknownServer(String),
    #[error("server {0:?} is disabled in the config")]
    Disabled(String),
    #[error("no route {path:?}; use /{server}/sse or /{server}/mcp")]
    NoRoute { path: String, server: String },
    #[error("method not allowed; use {0}")]
    Method(&'static str),
    #[error("request body is larger than {0} bytes (mcpProxy.options.maxBodySize)")]
    TooLarge(usize),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive within {}s (mcpProxy.options.bodyReadTimeout)", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("Content-Type must be application/json")]
    ContentType,
    #[error("Accept must include application/json and text/event-stream")]
    Accept,
    #[error("{0}")]
    AcceptStream(&'static str),
    #[error("unsupported MCP-Protocol-Version {got:?} on this request; supported: {}", crate::mcp::supported_except(got).join(", "))]
    Version { got: String },
    #[error("missing Mcp-Session-Id header; send initialize first")]
    NoSession,
    #[error("missing sessionId query parameter")]
    NoSessionParam,
    #[error("{0}")]
    UnknownSession(&'static str),
    #[error("this session already has a GET stream open")]
    StreamOpen,
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Limited(#[from] crate::limits::Refused),
    #[error("{0}")]
    Unavailable(String),
    #[error("request bodies in flight exceed mcpProxy.options.maxBodiesInFlight ({}); retry", bytesize::ByteSize::b(*.0 as u64))]
    Bodies(usize),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        use Rejection::*;
        match self {
            MissingToken | InvalidToken => StatusCode::UNAUTHORIZED,
            Origin(_) | Host(_) | InsufficientScope(_) | NoRule => StatusCode::FORBIDDEN,
            UnknownServer(_) | Disabled(_) | NoRoute { .. } | UnknownSession(_) => {
                StatusCode::NOT_FOUND
            }
            Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyRead(_) | Body(_) | Version { .. } | NoSession | NoSessionParam => {
                StatusCode::BAD_REQUEST
            }
            ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Accept | AcceptStream(_) => StatusCode::NOT_ACCEPTABLE,
            StreamOpen => StatusCode::CONFLICT,
            Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Busy(_) | Unavailable(_) | Bodies(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON-RPC code, for refusals an MCP client reads as a JSON-RPC
    /// error; `None` renders a plain `{"error": …}`.
    fn rpc_code(&self) -> Option<i64> {
        use Rejection::*;
        match self {
            Body(e) => Some(e.to_message().error_code().unwrap_or(INVALID_REQUEST)),
            Version { .. } => Some(crate::mcp::UNSUPPORTED_VERSION),
            TooLarge(_) | ContentType | Accept | NoSession | UnknownSession(_) | StreamOpen => {
                Some(INVALID_REQUEST)
            }
            Busy(_) | Unavailable(_) | Bodies(_) => Some(UPSTREAM_ERROR),
            Limited(_) => Some(RATE_LIMITED),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut r = match (&self, self.rpc_code()) {
            (Rejection::Body(e), _) => message_response(status, &e.to_message()),
            (Rejection::Version { got }, Some(code)) => message_response(
                status,
                &Message::error_with(
                    None,
                    code,
                    self.to_string(),
                    Some(crate::mcp::version_error_data(got)),
                ),
            ),
            (_, Some(code)) => {
                message_response(status, &Message::error(None, code, self.to_string()))
            }
            (_, None) => json_response(status, &json!({"error": self.to_string()})),
        };
        let h = r.headers_mut();
        match self {
            Rejection::MissingToken => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mcp-hub\""),
                );
            }
            Rejection::InvalidToken => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mcp-hub\", error=\"invalid_token\""),
                );
            }
            Rejection::InsufficientScope(scope) => {
                // RFC 6750 §3.1: the scope to ask for; a scope holds no quote.
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"mcp-hub\", error=\"insufficient_scope\", scope=\"{scope}\""
                )) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Rejection::Method(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Rejection::Limited(l) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(l.retry_after()));
            }
            // Room frees as soon as the bodies ahead are handed on.
            Rejection::Bodies(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        r
    }
}

impl From<Rejection> for Response<Body> {
    fn from(r: Rejection) -> Self {
        r.into_response()
    }
}

/// A session that could not be opened, as the client sees it.
impl From<crate::hub::OpenError> for Rejection {
    fn from(e: crate::hub::OpenError) -> Rejection {
        use crate::hub::OpenError;
        match e {
            OpenError::Disabled(name) => Rejection::Disabled(name),
            OpenError::Full(why) | OpenError::ClientFull(why) => Rejection::Busy(why),
            e => Rejection::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_render_status_code_and_headers() {
        let r = Rejection::InvalidToken.into_response();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        assert_eq!(
            Rejection::Method("GET").into_response().headers()["allow"],
            "GET"
        );
        assert_eq!(Rejection::TooLarge(5).status(), 413);
        assert_eq!(Rejection::TooLarge(5).rpc_code(), Some(INVALID_REQUEST));
        assert_eq!(Rejection::Busy("x".into()).status(), 503);
        assert_eq!(Rejection::Host("x".into()).rpc_code(), None);
        let r = Rejection::Bodies(32 << 20);
        assert!(r.to_string().contains("maxBodiesInFlight"), "{r}");
        let r = r.into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
    }
}
