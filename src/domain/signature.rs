//! Error signatures: an error message with its ids, numbers, e-mails, UUIDs and timestamps
//! masked, so that "HTTP 503 for lead 1841" and "HTTP 503 for lead 77" count as one failure
//! reason, and the signature of a failure (workflow, step, error class, destination host and
//! that message) that groups failures into incidents.
//!
//! The algorithm is versioned ([`SIGNATURE_VERSION`]): a change to what is masked makes new
//! keys, so incidents opened under one version are never merged with another's.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::wire::{SignatureView, StepError};

/// The version of the masking and keying below.
pub const SIGNATURE_VERSION: u32 = 1;
/// Characters of a masked message kept.
const MAX_CHARS: usize = 300;

/// Whole shapes masked before single tokens: values quoted in backticks (how APIs, and ACP,
/// quote the value they refuse), e-mail addresses, UUIDs, ISO 8601 timestamps (RFC 3339 and
/// its space-separated variant).
static SHAPES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
    let re = |pattern: &str| Regex::new(pattern).expect("a valid pattern");
    [
        (re(r"`[^`\n]{1,200}`"), "`<value>`"),
        (
            re(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+"),
            "<email>",
        ),
        (
            re(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
            "<uuid>",
        ),
        (
            re(r"\b\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+\-]\d{2}:?\d{2})?\b"),
            "<time>",
        ),
    ]
});

/// The message masked: values in backticks, e-mails, UUIDs and timestamps by name
/// (`` `<value>` ``, `<email>`, `<uuid>`, `<time>`), then every other token that contains a digit: pure numbers become `#`, anything
/// else with a digit in it (ids, hashes, durations) `<id>`. HTTP status codes (three digits
/// after `HTTP `) are kept, because they tell reasons apart. At most 300 characters.
pub fn signature(message: &str) -> String {
    let mut text = message.to_owned();
    for (shape, name) in SHAPES.iter() {
        if let std::borrow::Cow::Owned(masked) = shape.replace_all(&text, *name) {
            text = masked;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let mut previous_word = String::new();
    let flush = |token: &mut String, out: &mut String, previous_word: &mut String| {
        if token.is_empty() {
            return;
        }
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let status = previous_word == "HTTP"
            && token.len() == 3
            && token.chars().all(|c| c.is_ascii_digit());
        match (has_digit, status, token.chars().all(|c| c.is_ascii_digit())) {
            (false, _, _) | (_, true, _) => out.push_str(token),
            (true, false, true) => out.push('#'),
            (true, false, false) => out.push_str("<id>"),
        }
        *previous_word = std::mem::take(token);
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            token.push(c);
        } else {
            flush(&mut token, &mut out, &mut previous_word);
            out.push(c);
        }
    }
    flush(&mut token, &mut out, &mut previous_word);
    out.chars().take(MAX_CHARS).collect()
}

/// The signature of a failure of `step` in `workflow`: its class, its destination host and
/// its masked message, keyed `v1:` followed by the first 16 hex digits of the SHA-256 of
/// those parts.
pub fn failure_signature(workflow: &str, step: &str, error: &StepError) -> SignatureView {
    let message = signature(&error.message);
    let host = error.host.clone();
    let mut hash = Sha256::new();
    for part in [
        workflow,
        step,
        error.class.as_str(),
        host.as_deref().unwrap_or_default(),
        &message,
    ] {
        hash.update(part.as_bytes());
        hash.update([0x1f]);
    }
    let digest = hex::encode(hash.finalize());
    SignatureView {
        key: format!("v{SIGNATURE_VERSION}:{}", &digest[..16]),
        version: SIGNATURE_VERSION,
        workflow: workflow.to_owned(),
        step: step.to_owned(),
        class: error.class,
        host,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::{failure_signature, signature};
    use crate::wire::{ErrorClass, StepError};

    #[test]
    fn ids_numbers_and_times_are_masked_but_status_codes_kept() {
        assert_eq!(
            signature("HTTP 503: lead 1841 unavailable"),
            "HTTP 503: lead # unavailable"
        );
        assert_eq!(
            signature("HTTP 503: lead 77 unavailable"),
            "HTTP 503: lead # unavailable"
        );
        assert_eq!(
            signature("record 9f86d081-884c-7d65 not found at 2026-11-25T10:00:00Z"),
            "record <id> not found at <time>"
        );
        assert_eq!(
            signature(
                "no owner for ana.b+7@acme.co.uk (lead 3f2c1a9e-0b1d-4c8e-9f00-1a2b3c4d5e6f) at 2026-11-25 10:00:00.123+01:00"
            ),
            "no owner for <email> (lead <uuid>) at <time>"
        );
        assert_eq!(signature("timed out after 10s"), "timed out after <id>");
        assert_eq!(
            signature(r#"HTTP 422: {"error":"`invalid@@acme` is not an email address"}"#),
            r#"HTTP 422: {"error":"`<value>` is not an email address"}"#
        );
        assert_eq!(
            signature(r#"HTTP 422: {"error":"`invalid-address` is not an email address"}"#),
            r#"HTTP 422: {"error":"`<value>` is not an email address"}"#
        );
    }

    fn error(message: &str, host: Option<&str>) -> StepError {
        StepError {
            class: ErrorClass::Transient,
            message: message.into(),
            retryable: true,
            status: Some(503),
            host: host.map(Into::into),
        }
    }

    #[test]
    fn messages_differing_only_in_ids_share_a_signature_and_hosts_tell_them_apart() {
        let a = failure_signature(
            "enrich",
            "call",
            &error("lead 1 of a@b.io failed", Some("x.io")),
        );
        let b = failure_signature(
            "enrich",
            "call",
            &error("lead 99 of c@d.io failed", Some("x.io")),
        );
        let c = failure_signature(
            "enrich",
            "call",
            &error("lead 1 of a@b.io failed", Some("y.io")),
        );
        let d = failure_signature(
            "enrich",
            "other",
            &error("lead 1 of a@b.io failed", Some("x.io")),
        );
        assert_eq!(a, b);
        assert!(a.key.starts_with("v1:") && a.key.len() == 19, "{}", a.key);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
        assert_eq!(a.message, "lead # of <email> failed");
    }
}
