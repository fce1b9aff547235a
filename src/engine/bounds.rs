//! Bounds on what a run stores: a step's input, output and detail are capped so one large
//! answer from an outside API cannot bloat the run log (and every read of the run).

use serde_json::{Value, json};

/// Default cap on one stored value (a step's input, output or detail), in bytes of JSON.
pub const DEFAULT_MAX_STORED: usize = 256 * 1024;

/// Most characters of an error message stored.
pub const MAX_ERROR_CHARS: usize = 1_000;

/// `value` as stored: itself when its JSON takes at most `max` bytes, else a marker
/// `{"truncated": true, "original_bytes": N, "preview": "<the first bytes of its JSON>"}`.
/// Redact before capping, never after, so a cut cannot leave part of a secret.
pub fn cap(value: Value, max: usize) -> Value {
    let text = value.to_string();
    if text.len() <= max {
        return value;
    }
    // The preview is escaped again inside the marker, so shrink it until the marker fits.
    let mut budget = max.saturating_sub(128);
    loop {
        let mut end = budget.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let marker =
            json!({"truncated": true, "original_bytes": text.len(), "preview": &text[..end]});
        if end == 0 || marker.to_string().len() <= max {
            return marker;
        }
        budget = end * 3 / 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_become_a_marker_within_the_cap() {
        let small = json!({"a": 1});
        assert_eq!(cap(small.clone(), 1024), small);
        let big = json!({"items": vec!["é".repeat(10); 10_000]});
        let original = big.to_string().len();
        let stored = cap(big, 4096);
        assert_eq!(stored["truncated"], true);
        assert_eq!(stored["original_bytes"], original);
        assert!(
            stored.to_string().len() <= 4096,
            "{}",
            stored.to_string().len()
        );
        assert!(
            stored["preview"]
                .as_str()
                .unwrap()
                .starts_with("{\"items\":[\"éé")
        );
    }
}
