//! Error signatures: an error message with its ids, numbers and timestamps masked, so that
//! "HTTP 503 for lead 1841" and "HTTP 503 for lead 77" count as one failure reason.

/// The message with every token that contains a digit masked: pure numbers become `#`,
/// anything else with a digit in it (ids, hashes, timestamps, emails with numbers) `<id>`.
/// HTTP status codes (three digits after `HTTP `) are kept, because they tell reasons apart.
pub fn signature(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
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
    for c in message.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            token.push(c);
        } else {
            flush(&mut token, &mut out, &mut previous_word);
            out.push(c);
        }
    }
    flush(&mut token, &mut out, &mut previous_word);
    out.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::signature;

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
            "record <id> not found at <id>:#:<id>"
        );
        assert_eq!(signature("timed out after 10s"), "timed out after <id>");
    }
}
