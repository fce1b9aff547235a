//! Signed links: read-only, expiring capabilities that let a person open one alert's failed
//! runs (`{public_url}/a/{token}`) or one run (`{public_url}/r/{token}`) without a login, in
//! the manner of S3 presigned URLs and Grafana's shared links.
//!
//! A token is the URL-safe base64 (RFC 4648 §5, no padding) of
//! `claims || HMAC-SHA256(key, "acp-link-v1" || claims)[..16]`. The claims are, big-endian:
//! a format byte (1), the scope (`a` alert, `r` run), the signing key's id (u32), the alert
//! or run id (i64), the expiry (i64 Unix seconds) and, for an alert, the start of the
//! failures it reports (i64 Unix milliseconds, as runs are timed). The MAC is truncated to 128 bits, as RFC 2104 §5
//! allows (no fewer than half the hash's bits). Keys are 32 random bytes kept in the
//! database; rotating them retires every key before, and with it every link signed by one.
//!
//! Checking is [`parse`] (shape), then the key of [`Claims::key`] is looked up, then
//! [`Claims::verify`] (MAC, expiry, retirement), so a caller can say *why* a link is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The format byte of the claims this code writes.
const FORMAT: u8 = 1;
/// Bytes of MAC kept (RFC 2104 §5: at least half of SHA-256's 32).
const MAC_BYTES: usize = 16;
/// Bytes of a signing key.
pub const KEY_BYTES: usize = 32;
/// Domain separation: these MACs mean nothing to any other signer of the same key.
const CONTEXT: &[u8] = b"acp-link-v1";

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One alert's failed runs: those of its workflow queued at or after `since`.
    Alert { id: i64, since: DateTime<Utc> },
    /// One run.
    Run { id: i64 },
}

impl Scope {
    fn tag(&self) -> u8 {
        match self {
            Scope::Alert { .. } => b'a',
            Scope::Run { .. } => b'r',
        }
    }

    /// The path segment links of this scope are served under: `a` or `r`.
    pub fn path(&self) -> &'static str {
        match self {
            Scope::Alert { .. } => "a",
            Scope::Run { .. } => "r",
        }
    }

    /// The audit target: `alert:7` or `run:42`.
    pub fn target(&self) -> String {
        match self {
            Scope::Alert { id, .. } => format!("alert:{id}"),
            Scope::Run { id } => format!("run:{id}"),
        }
    }
}

/// A signing key as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkKey {
    pub id: i64,
    pub secret: [u8; KEY_BYTES],
    pub created_at: DateTime<Utc>,
    /// When a rotation retired it; links it signed no longer open.
    pub retired_at: Option<DateTime<Utc>>,
}

impl LinkKey {
    /// 32 bytes from the operating system's random source.
    ///
    /// # Errors
    /// The OS error when it gives no random bytes.
    pub fn new_secret() -> Result<[u8; KEY_BYTES], getrandom::Error> {
        let mut secret = [0u8; KEY_BYTES];
        getrandom::fill(&mut secret)?;
        Ok(secret)
    }
}

/// What a token says (before it is trusted: see [`Claims::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub scope: Scope,
    /// The id of the key that signed it.
    pub key: i64,
    pub expires_at: DateTime<Utc>,
}

/// How refusals show a time: to the second, in UTC.
const SHOWN: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Why a link does not open. Every answer is safe to show: none tells how close a forgery came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a token ACP made, or changed since: a bad shape, an unknown key, a wrong MAC, or a
    /// token of the other scope.
    #[error("this link is not valid: it was changed or cut short")]
    Tampered,
    #[error("this link expired on {}", .0.format(SHOWN))]
    Expired(DateTime<Utc>),
    /// Its key was retired by `acp token rotate-links` before it expired.
    #[error("this link was revoked on {}, when the server's links were rotated", .0.format(SHOWN))]
    Rotated(DateTime<Utc>),
}

impl Refusal {
    /// A word for logs, the audit log and tests: `tampered`, `expired` or `rotated`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Tampered => "tampered",
            Refusal::Expired(_) => "expired",
            Refusal::Rotated(_) => "rotated",
        }
    }
}

fn encode_claims(claims: &Claims) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(30);
    bytes.push(FORMAT);
    bytes.push(claims.scope.tag());
    // Key ids are small row ids; a larger one cannot be written and is clamped, so its links
    // never verify (the key looked up is another).
    bytes.extend_from_slice(&u32::try_from(claims.key).unwrap_or(u32::MAX).to_be_bytes());
    let (id, since) = match claims.scope {
        Scope::Alert { id, since } => (id, Some(since)),
        Scope::Run { id } => (id, None),
    };
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&claims.expires_at.timestamp().to_be_bytes());
    if let Some(since) = since {
        bytes.extend_from_slice(&since.timestamp_millis().to_be_bytes());
    }
    bytes
}

fn mac(secret: &[u8; KEY_BYTES], claims: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(CONTEXT);
    mac.update(claims);
    mac
}

/// The token for `scope`, valid until `expires_at` (whole seconds), signed with `key`.
pub fn sign(key: &LinkKey, scope: Scope, expires_at: DateTime<Utc>) -> String {
    let claims = encode_claims(&Claims {
        scope,
        key: key.id,
        expires_at,
    });
    let tag = mac(&key.secret, &claims).finalize().into_bytes();
    let mut bytes = claims;
    bytes.extend_from_slice(&tag[..MAC_BYTES]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The page address of a link: `{base}/a/{token}` or `{base}/r/{token}`.
pub fn url(base: &str, key: &LinkKey, scope: Scope, expires_at: DateTime<Utc>) -> String {
    format!(
        "{}/{}/{}",
        base.trim_end_matches('/'),
        scope.path(),
        sign(key, scope, expires_at)
    )
}

/// A parsed token: its claims and the bytes they were read from.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub claims: Claims,
    signed: Vec<u8>,
    tag: Vec<u8>,
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// Reads a token's claims without trusting them.
///
/// # Errors
/// [`Refusal::Tampered`] when it is not base64url without padding (trailing bits must be
/// zero, so no two texts decode to one token), not this format, or not of its length.
pub fn parse(token: &str) -> Result<Parsed, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| Refusal::Tampered)?;
    if bytes.len() < 2 || bytes[0] != FORMAT {
        return Err(Refusal::Tampered);
    }
    let length = match bytes[1] {
        b'a' => 30,
        b'r' => 22,
        _ => return Err(Refusal::Tampered),
    };
    if bytes.len() != length + MAC_BYTES {
        return Err(Refusal::Tampered);
    }
    let (signed, tag) = bytes.split_at(length);
    let key = u32::from_be_bytes(signed[2..6].try_into().map_err(|_| Refusal::Tampered)?);
    let id = read_i64(signed, 6).ok_or(Refusal::Tampered)?;
    let expires_at = read_i64(signed, 14)
        .and_then(time)
        .ok_or(Refusal::Tampered)?;
    let scope = match signed[1] {
        b'a' => Scope::Alert {
            id,
            since: read_i64(signed, 22)
                .and_then(DateTime::from_timestamp_millis)
                .ok_or(Refusal::Tampered)?,
        },
        _ => Scope::Run { id },
    };
    Ok(Parsed {
        claims: Claims {
            scope,
            key: i64::from(key),
            expires_at,
        },
        signed: signed.to_vec(),
        tag: tag.to_vec(),
    })
}

impl Parsed {
    /// Trusts the claims when `key` (the key of [`Claims::key`]) signed them and they hold at
    /// `now`. The MAC is compared in constant time. A link whose key was retired before it
    /// expired says it was rotated; one that expired first says it expired.
    ///
    /// # Errors
    /// [`Refusal::Tampered`] for a MAC that does not match, [`Refusal::Expired`],
    /// [`Refusal::Rotated`].
    pub fn verify(&self, key: &LinkKey, now: DateTime<Utc>) -> Result<Claims, Refusal> {
        if key.id != self.claims.key {
            return Err(Refusal::Tampered);
        }
        mac(&key.secret, &self.signed)
            .verify_truncated_left(&self.tag)
            .map_err(|_| Refusal::Tampered)?;
        let expires_at = self.claims.expires_at;
        match key.retired_at {
            Some(retired) if retired < expires_at && retired <= now => {
                Err(Refusal::Rotated(retired))
            }
            _ if now >= expires_at => Err(Refusal::Expired(expires_at)),
            _ => Ok(self.claims),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64) -> LinkKey {
        LinkKey {
            id,
            secret: [id as u8; KEY_BYTES],
            created_at: at(0),
            retired_at: None,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    const WEEK: i64 = 7 * 86_400;

    fn alert() -> Scope {
        Scope::Alert {
            id: 7,
            since: DateTime::from_timestamp_millis(1_799_996_400_123).unwrap(),
        }
    }

    #[test]
    fn a_signed_link_opens_what_it_names_until_it_expires() {
        let k = key(1);
        let token = sign(&k, alert(), at(WEEK));
        assert_eq!(token.len(), 62, "{token}");
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.claims.key, 1);
        let claims = parsed.verify(&k, at(60)).unwrap();
        assert_eq!(claims.scope, alert());
        assert_eq!(claims.expires_at, at(WEEK));
        assert_eq!(parsed.verify(&k, at(WEEK)), Err(Refusal::Expired(at(WEEK))));
        let run = sign(&k, Scope::Run { id: 42 }, at(WEEK));
        assert_eq!(run.len(), 51, "{run}");
        assert_eq!(
            parse(&run).unwrap().verify(&k, at(0)).unwrap().scope,
            Scope::Run { id: 42 }
        );
    }

    #[test]
    fn changing_any_character_or_cutting_the_token_is_refused_as_tampered() {
        let k = key(1);
        let token = sign(&k, alert(), at(WEEK));
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let changed: String = chars.into_iter().collect();
            let outcome = parse(&changed).and_then(|p| {
                let key = if p.claims.key == 1 { k.clone() } else { key(2) };
                p.verify(&key, at(60))
            });
            assert_eq!(outcome, Err(Refusal::Tampered), "character {i}: {changed}");
        }
        for cut in [0, 1, 10, token.len() - 1] {
            assert_eq!(parse(&token[..cut]).err(), Some(Refusal::Tampered));
        }
        assert_eq!(parse("not a token!").err(), Some(Refusal::Tampered));
        assert_eq!(parse(&format!("{token}A")).err(), Some(Refusal::Tampered));
    }

    #[test]
    fn another_key_or_a_rotated_key_does_not_open_it() {
        let k = key(1);
        let token = sign(&k, Scope::Run { id: 9 }, at(WEEK));
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.verify(&key(2), at(0)), Err(Refusal::Tampered));
        let forged = LinkKey {
            secret: [9; KEY_BYTES],
            ..k.clone()
        };
        assert_eq!(parsed.verify(&forged, at(0)), Err(Refusal::Tampered));
        let retired = LinkKey {
            retired_at: Some(at(100)),
            ..k.clone()
        };
        assert_eq!(parsed.verify(&retired, at(50)).map(|c| c.key), Ok(1));
        assert_eq!(
            parsed.verify(&retired, at(200)),
            Err(Refusal::Rotated(at(100)))
        );
        let after_expiry = LinkKey {
            retired_at: Some(at(WEEK + 5)),
            ..k
        };
        assert_eq!(
            parsed.verify(&after_expiry, at(WEEK + 10)),
            Err(Refusal::Expired(at(WEEK)))
        );
    }

    #[test]
    fn refusals_say_why_in_words() {
        assert_eq!(
            Refusal::Expired(at(0)).to_string(),
            "this link expired on 2027-01-15 08:00:00 UTC"
        );
        assert_eq!(Refusal::Rotated(at(0)).code(), "rotated");
        let retired = DateTime::from_timestamp_millis(1_800_000_000_258).unwrap();
        assert_eq!(
            Refusal::Rotated(retired).to_string(),
            "this link was revoked on 2027-01-15 08:00:00 UTC, when the server's links were rotated"
        );
        assert_eq!(alert().target(), "alert:7");
        assert_eq!(Scope::Run { id: 3 }.path(), "r");
    }
}
