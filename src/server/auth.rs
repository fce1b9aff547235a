//! Bearer tokens and roles. Tokens are random, shown once, stored as SHA-256 hashes and
//! compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::store::{NewAudit, Store, StoreError};
use crate::wire::{Role, TokenCreated};

/// A new random token: `acp_` and 40 hex digits (160 bits from the OS).
pub fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Other(format!("no randomness: {e}")))?;
    Ok(format!("acp_{}", hex::encode(bytes)))
}

/// The hash stored for a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and answers its secret (shown once).
///
/// # Errors
/// [`StoreError::Invalid`] for a name that is empty, over 100 characters or holds control
/// or invisible formatting characters; the store's errors.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    secret: Option<String>,
) -> Result<TokenCreated, StoreError> {
    // A token's name is the actor in the audit log and on every hold it places: shown on
    // terminals, so it must be plain text.
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.contains(crate::wire::is_unsafe_char) {
        return Err(StoreError::Invalid(
            "a token name is 1 to 100 characters without control or invisible formatting \
             characters"
                .into(),
        ));
    }
    let token = match secret {
        Some(token) => token,
        None => new_token()?,
    };
    let view = store.create_token(name, role, &hash_token(&token)).await?;
    Ok(TokenCreated { view, token })
}

/// On a database without tokens, creates the first admin token: `ACP_ADMIN_TOKEN` when given,
/// else a random one. Answers the secret only when it was generated (to print it once).
pub async fn bootstrap_admin(
    store: &dyn Store,
    given: Option<String>,
) -> Result<Option<String>, StoreError> {
    if !store.tokens().await?.is_empty() {
        return Ok(None);
    }
    let generated = given.is_none();
    let created = create_token(store, "admin", Role::Admin, given).await?;
    Ok(generated.then_some(created.token))
}

/// Who is calling: the token's name and role.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Whom a call without valid credentials is audited as.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Viewer,
        }
    }

    /// Refuses callers whose role does not include `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this needs the {needed} role; the token `{}` is {}",
            self.name, self.role
        )))
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, per
/// RFC 9110 §11.1). The one place every route reads a token from a header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks a token against the store.
pub async fn authenticate(store: &dyn Store, token: &str) -> Result<Caller, ApiError> {
    let hash = hash_token(token.trim());
    let found = store.token_by_hash(&hash).await?;
    match found {
        Some((view, stored))
            if bool::from(stored.as_bytes().ct_eq(hash.as_bytes()))
                && view.revoked_at.is_none() =>
        {
            Ok(Caller {
                name: view.name,
                role: view.role,
            })
        }
        Some(_) | None => Err(ApiError::unauthorized(
            "the token is not valid or was revoked",
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
        authenticate(state.store.as_ref(), token).await
    }
}

impl AppState {
    /// Records a control action and its outcome in the audit log, then passes the result on.
    pub async fn audited<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: String,
        reason: Option<String>,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code.to_owned(),
        };
        let entry = NewAudit {
            actor: caller.name.clone(),
            role: caller.role,
            action: action.to_owned(),
            target,
            reason,
            outcome,
        };
        if let Err(e) = self.store.audit(entry).await {
            tracing::error!("writing the audit log failed: {e}");
        }
        result
    }
}
