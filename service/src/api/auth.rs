//! `--admin-token`: every request must carry `Kong-Admin-Token: <token>` (the header Kong
//! Enterprise and its clients send), compared in constant time; otherwise 401.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

pub const TOKEN_HEADER: &str = "kong-admin-token";

pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.admin_token {
        let given = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !token_matches(expected.as_bytes(), given) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Constant time in the token's content (the lengths may differ: that is not a secret worth
/// hiding, and `ct_eq` on slices of different lengths answers false at once).
pub fn token_matches(expected: &[u8], given: &[u8]) -> bool {
    bool::from(expected.ct_eq(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cret", b"s3cres"));
        assert!(!token_matches(b"s3cret", b""));
    }
}
