//! Standard Webhooks signatures: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! base64 part of a `whsec_...` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a secret could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no randomness for a new secret: {0}")]
    NoRandomness(String),
    #[error("the webhook secret is not base64: {0}")]
    NotBase64(String),
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
///
/// # Errors
/// [`SecretError::NoRandomness`] when the operating system gives no random bytes.
pub fn new_secret() -> Result<String, SecretError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::NoRandomness(e.to_string()))?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// How far a `webhook-timestamp` may be from now, either way, in seconds (the
/// specification's recommended tolerance: five minutes).
pub const TOLERANCE_SECS: i64 = 300;

/// The HMAC key of a secret: the base64 after `whsec_`, or the text itself for a secret
/// without that prefix.
fn key_of(secret: &str) -> Result<Vec<u8>, SecretError> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map_err(|e| SecretError::NotBase64(e.to_string())),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

fn mac(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<Hmac<Sha256>, SecretError> {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)?)
        .map_err(|e| SecretError::NotBase64(e.to_string()))?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value for one message.
///
/// # Errors
/// [`SecretError::NotBase64`] for a `whsec_` secret whose key is not base64.
pub fn signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SecretError> {
    let mac = mac(secret, id, timestamp, body.as_bytes())?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Why an inbound message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("webhook-id, webhook-timestamp and webhook-signature are all needed")]
    Missing,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("webhook-signature does not match")]
    Mismatch,
}

/// Verifies an inbound message: its timestamp is within [`TOLERANCE_SECS`] of `now` (Unix
/// seconds) and one of the space-separated `v1,<base64>` signatures matches, compared in
/// constant time. Each `id` should then be accepted once (the caller's job).
///
/// # Errors
/// What was wrong, as a [`Refused`].
pub fn verify(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(Refused::Missing);
    };
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refused::BadTimestamp)?;
    if timestamp.abs_diff(now) > TOLERANCE_SECS as u64 {
        return Err(Refused::Stale);
    }
    let expected = mac(secret, id, timestamp, body).map_err(|_| Refused::Mismatch)?;
    let matches = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|given| expected.clone().verify_slice(&given).is_ok());
    if matches {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verifies_signatures_timestamps_and_refuses_the_rest() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let (id, ts) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330");
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let check = |sig: Option<&str>, now: i64, body: &[u8]| {
            verify(secret, Some(id), Some(ts), sig, body, now)
        };
        assert_eq!(check(Some(good), 1614265330 + 299, body), Ok(()));
        let several = format!("v1,bm90IGl0 {good}");
        assert_eq!(check(Some(&several), 1614265330, body), Ok(()));
        assert_eq!(
            check(Some(good), 1614265330 + 301, body),
            Err(Refused::Stale)
        );
        assert_eq!(
            check(Some(good), 1614265330 - 301, body),
            Err(Refused::Stale)
        );
        assert_eq!(check(Some(good), 1614265330, b"{}"), Err(Refused::Mismatch));
        assert_eq!(check(None, 1614265330, body), Err(Refused::Missing));
        assert_eq!(
            verify(secret, Some(id), Some("soon"), Some(good), body, 0),
            Err(Refused::BadTimestamp)
        );
        let plain = signature("plain-text-secret", id, 1614265330, "{}").unwrap();
        assert_eq!(
            verify(
                "plain-text-secret",
                Some(id),
                Some(ts),
                Some(&plain),
                b"{}",
                1614265330
            ),
            Ok(())
        );
    }
}
