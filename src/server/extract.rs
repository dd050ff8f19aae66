//! A request's path parameters and query as the routes take them. One that does not fit (a run
//! number that is not a number, `?limit=abc`) is answered in the route's own kind: the API's JSON
//! envelope with `bad_request` and 400, or the dashboard's error page, never axum's plain text.

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// An extractor for an API route: `Api(Path(id)): Api<Path<String>>`.
pub(super) struct Api<T>(pub(super) T);

/// An extractor for a dashboard page: `Page(Query(q)): Page<Query<JobQuery>>`.
pub(super) struct Page<T>(pub(super) T);

impl<S: Send + Sync, T> FromRequestParts<S> for Api<T>
where
    T: FromRequestParts<S>,
    T::Rejection: Refusal,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match T::from_request_parts(parts, state).await {
            Ok(value) => Ok(Self(value)),
            Err(rejection) => {
                let (status, error) = rejection.refusal();
                Err(json_error(status, &error))
            }
        }
    }
}

impl<S: Send + Sync, T> FromRequestParts<S> for Page<T>
where
    T: FromRequestParts<S>,
    T::Rejection: Refusal,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match T::from_request_parts(parts, state).await {
            Ok(value) => Ok(Self(value)),
            Err(rejection) => {
                let (status, error) = rejection.refusal();
                Err(super::dashboard::problem(status, &error.to_string()))
            }
        }
    }
}

/// An error as the API answers every error: the `--json` envelope, with `status`.
pub(super) fn json_error(status: StatusCode, error: &Error) -> Response {
    let body = serde_json::json!({
        "ok": false,
        "error": {"code": error.code(), "message": error.to_string(), "hint": error.hint()},
    });
    (status, axum::Json(body)).into_response()
}

/// What an extractor's rejection stands for: a request that does not fit (400 and `bad_request`),
/// or, where axum says the fault is ours, an internal error.
pub(super) trait Refusal {
    fn refusal(&self) -> (StatusCode, Error);
}

impl Refusal for PathRejection {
    fn refusal(&self) -> (StatusCode, Error) {
        let PathRejection::FailedToDeserializePathParams(failed) = self else {
            return internal("path", &self.body_text());
        };
        let message = match failed.kind() {
            ErrorKind::ParseError {
                value,
                expected_type,
            }
            | ErrorKind::ParseErrorAtIndex {
                value,
                expected_type,
                ..
            }
            | ErrorKind::ParseErrorAtKey {
                value,
                expected_type,
                ..
            } => format!("`{value}` in the path is not {}", kind_of(expected_type)),
            ErrorKind::InvalidUtf8InPathParam { .. } => "the path is not UTF-8".to_owned(),
            _ if failed.status().is_server_error() => {
                return internal("path", &failed.body_text());
            }
            other => format!(
                "the path does not fit the route: {}",
                sentence(&other.to_string())
            ),
        };
        (StatusCode::BAD_REQUEST, Error::BadRequest { message })
    }
}

impl Refusal for QueryRejection {
    fn refusal(&self) -> (StatusCode, Error) {
        if self.status().is_server_error() {
            return internal("query", &self.body_text());
        }
        let text = self.body_text();
        // axum's words before serde's, which name the field and what was wrong with it.
        let said = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        let message = format!("the query does not fit the route: {}", sentence(said));
        (StatusCode::BAD_REQUEST, Error::BadRequest { message })
    }
}

fn internal(part: &str, said: &str) -> (StatusCode, Error) {
    let message = format!("the route cannot take its {part}: {}", sentence(said));
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Error::Internal { message },
    )
}

/// A Rust type as a person reads it in a URL.
fn kind_of(expected_type: &str) -> String {
    match expected_type {
        "i64" | "u64" | "i32" | "u32" => "a whole number".to_owned(),
        other => format!("a {other}"),
    }
}

/// `text` as a fragment of our messages, which start in lowercase.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
