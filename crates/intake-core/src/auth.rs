//! Access tokens: who may write or read which stream, and who may manage
//! the node. Tokens live in the catalog, hashed (SHA-256 of the secret); the
//! secret is shown once, when the token is made.
//!
//! A token is `itk_<id>_<secret>`: `id` (16 hex digits) names its catalog
//! row, `secret` (32 hex digits) proves it. Scopes: `admin` (everything),
//! `write:STREAM`, `read:STREAM`, where `STREAM` may be `*` (every stream)
//! or end in `*` (a prefix).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Managing streams, sinks, tokens; the dashboard's data.
    Admin,
    /// Pushing records to the stream.
    Write(&'a str),
    /// Reading records or rows of the stream.
    Read(&'a str),
}

impl fmt::Display for Access<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Write(s) => write!(f, "write:{s}"),
            Self::Read(s) => write!(f, "read:{s}"),
        }
    }
}

/// One permission of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// Everything.
    Admin,
    /// Push to matching streams.
    Write(String),
    /// Read matching streams.
    Read(String),
}

impl Scope {
    /// True when this scope grants `access`.
    pub fn grants(&self, access: Access<'_>) -> bool {
        match (self, access) {
            (Self::Admin, _) => true,
            (Self::Write(pattern), Access::Write(stream))
            | (Self::Read(pattern), Access::Read(stream)) => matches_pattern(pattern, stream),
            _ => false,
        }
    }
}

fn matches_pattern(pattern: &str, stream: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => stream.starts_with(prefix),
        None => pattern == stream,
    }
}

impl TryFrom<String> for Scope {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a scope: use admin, write:STREAM or read:STREAM (STREAM may be * or end in *)"
            )
        };
        if text == "admin" {
            return Ok(Self::Admin);
        }
        let (kind, stream) = text.split_once(':').ok_or_else(bad)?;
        let pattern_ok = !stream.is_empty()
            && stream
                .trim_end_matches('*')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !stream.trim_end_matches('*').contains('*');
        if !pattern_ok {
            return Err(bad());
        }
        match kind {
            "write" => Ok(Self::Write(stream.to_owned())),
            "read" => Ok(Self::Read(stream.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Admin => "admin".to_owned(),
            Scope::Write(s) => format!("write:{s}"),
            Scope::Read(s) => format!("read:{s}"),
        }
    }
}

/// What a scope looks like: `admin`, `write:STREAM` or `read:STREAM`, where
/// STREAM is a name, `*`, or a name prefix ending in `*`.
pub const SCOPE_PATTERN: &str = r"^(admin|(read|write):([A-Za-z0-9._-]+\**|\*+))$";

impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(SCOPE_PATTERN))
            .description(Some(
                "admin, write:STREAM or read:STREAM; STREAM may be * or end in *",
            ))
            .examples([serde_json::json!("write:orders")])
            .into()
    }
}

impl utoipa::ToSchema for Scope {}

/// A token as the catalog and the admin API show it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The id part of the token.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made (epoch ms).
    pub created_at_ms: i64,
    /// When it stops working (epoch ms); `None` for never.
    pub expires_at_ms: Option<i64>,
}

impl TokenInfo {
    /// True when one of the scopes grants `access`.
    pub fn grants(&self, access: Access<'_>) -> bool {
        self.scopes.iter().any(|s| s.grants(access))
    }
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `itk_<id>_<secret>`.
    #[error("the token is malformed: tokens look like itk_<id>_<secret>")]
    Malformed,
    /// No token has this id, or the secret does not match.
    #[error("the token is not valid (unknown, revoked, or a wrong secret)")]
    Unknown,
    /// Past its expiry.
    #[error("the token expired")]
    Expired,
}

/// A new token's parts: (id, secret, the full token text).
pub(crate) fn new_token() -> (String, String, String) {
    let id = format!("{:016x}", rand::random::<u64>());
    let secret = format!("{:032x}", rand::random::<u128>());
    let token = format!("itk_{id}_{secret}");
    (id, secret, token)
}

/// Splits `itk_<id>_<secret>`.
pub(crate) fn split_token(token: &str) -> Result<(&str, &str), TokenError> {
    let rest = token.strip_prefix("itk_").ok_or(TokenError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(TokenError::Malformed)?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex(id, 16) && hex(secret, 32) {
        Ok((id, secret))
    } else {
        Err(TokenError::Malformed)
    }
}

/// The stored form of a secret.
pub(crate) fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_grant() {
        let scope = |s: &str| Scope::try_from(s.to_owned()).unwrap();
        assert!(scope("admin").grants(Access::Write("x")));
        assert!(scope("write:orders").grants(Access::Write("orders")));
        assert!(!scope("write:orders").grants(Access::Read("orders")));
        assert!(!scope("write:orders").grants(Access::Write("orders2")));
        assert!(scope("read:*").grants(Access::Read("anything")));
        assert!(scope("read:dev-*").grants(Access::Read("dev-7")));
        assert!(!scope("read:dev-*").grants(Access::Read("prod")));
        assert!(!scope("read:*").grants(Access::Admin));
        for bad in [
            "",
            "root",
            "write:",
            "write:a*b",
            "delete:x",
            "write:../etc",
        ] {
            assert!(Scope::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        assert_eq!(String::from(scope("read:a*")), "read:a*");
    }

    #[test]
    fn tokens_split_and_hash() {
        let (id, secret, token) = new_token();
        assert_eq!(split_token(&token).unwrap(), (id.as_str(), secret.as_str()));
        assert_eq!(hash_secret(&secret).len(), 64);
        assert_ne!(hash_secret(&secret), hash_secret("other"));
        for bad in [
            "",
            "itk_",
            "itk_abc_def",
            "Bearer x",
            &token[..token.len() - 1],
        ] {
            assert_eq!(split_token(bad), Err(TokenError::Malformed), "{bad}");
        }
    }
}
