//! Secret redaction: what is stored or streamed never contains a secret.
//!
//! Two rules: values of the secrets a workflow reads are replaced wherever they appear (a key
//! in a URL, a token echoed in an error), in every encoding a template or an HTTP client can
//! give them (raw, trimmed, percent- and form-encoded, JSON-escaped, hex, base64 alone or
//! inside a longer token such as a Basic `user:secret` header); and fields whose names say
//! they hold credentials (Authorization, Cookie, `*_token`, `password`, `api_key`, ...) are
//! replaced whole. A text that ends with the start of a secret (cut by a size limit) loses
//! that end, and cutting happens after redaction ([`Redactor::text_cut`]).

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::template;
use serde_json::Value;

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

const SENSITIVE_NAMES: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "x_api_key",
    "client_secret",
    "private_key",
    "session",
];

const SENSITIVE_SUFFIXES: &[&str] = &["_password", "_secret", "_token", "_api_key", "_apikey"];

/// True for a field or header name that holds a credential.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    SENSITIVE_NAMES.contains(&name.as_str()) || SENSITIVE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Redacts known secret values, in every encoding a template or HTTP client produces, and
/// credential-named fields.
#[derive(Default)]
pub struct Redactor {
    /// The values redacted, to extend the redactor with more.
    secrets: Vec<String>,
    /// Every form a secret can take in text, longest first.
    needles: Vec<Needle>,
    /// Every form, sorted: a text's end is matched against their starts by binary search.
    prefixes: Vec<String>,
    /// All needles in one automaton: a text is scanned once, whatever the number of forms.
    matcher: Option<AhoCorasick>,
}

/// One encoded form of a secret.
struct Needle {
    text: String,
    /// A base64 core: the secret's bits sit inside a longer base64 token (`user:secret` in a
    /// Basic header, say), so the whole token around the match is masked.
    base64: bool,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms of secrets)", self.needles.len())
    }
}

/// minijinja's `urlencode` keeps `/ . - _`; RFC 3986 components keep `- . _ ~`;
/// JavaScript's `encodeURIComponent` keeps `- _ . ! ~ * ' ( )`; a URL's query as an HTTP
/// client writes it (the WHATWG URL Standard's query percent-encode set, and its special-query
/// set with `'`, which reqwest's `url` applies) escapes only controls, space, `" # < >`.
const PERCENT_SETS: [&AsciiSet; 5] = [
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>'),
    &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'\''),
    &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_'),
    &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~'),
    &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')'),
];

/// Secrets shorter than this are matched raw only: their encodings would mask ordinary text.
const MIN_ENCODED: usize = 4;

/// A text that ends with this much of a secret's form is taken to be a cut secret.
const MIN_TAIL: usize = 4;

/// Forms of secrets up to which the matcher is a DFA.
const DFA_NEEDLES: usize = 2_000;

impl Redactor {
    /// A redactor for these secret values (empty values are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let mut needles: Vec<Needle> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut add = |text: String, base64: bool| {
            if !text.is_empty() && seen.insert(text.clone()) {
                needles.push(Needle { text, base64 });
            }
        };
        for secret in &secrets {
            for form in [secret.as_str(), secret.trim()] {
                if form.is_empty() {
                    continue;
                }
                add(form.to_owned(), false);
                if form.len() < MIN_ENCODED {
                    continue;
                }
                for text in encodings(form) {
                    add(text, false);
                }
                for core in base64_cores(form.as_bytes()) {
                    add(core, true);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.text.len()));
        // A DFA scans fastest but grows with the forms; past a few thousand, the automaton's
        // own choice (a contiguous NFA) keeps building time and memory in line.
        let kind = (needles.len() <= DFA_NEEDLES).then_some(AhoCorasickKind::DFA);
        let matcher = AhoCorasick::builder()
            .kind(kind)
            .build(needles.iter().map(|n| n.text.as_str()))
            .ok();
        let mut prefixes: Vec<String> = needles.iter().map(|n| n.text.clone()).collect();
        prefixes.sort_unstable();
        Self {
            secrets,
            needles,
            matcher,
            prefixes,
        }
    }

    /// This redactor, also redacting `more` (values derived from a secret).
    pub fn with(&self, more: Vec<String>) -> Self {
        Self::new(self.secrets.iter().cloned().chain(more))
    }

    /// Replaces every secret, in any of its encodings, inside `text`.
    pub fn text(&self, text: &str) -> String {
        self.masked(text, false)
    }

    /// Like [`Redactor::text`] for an excerpt, a text that may have been cut before it got
    /// here (an error quoting the start of a body): one that ends with the start of a secret
    /// loses that end too.
    pub fn excerpt(&self, text: &str) -> String {
        self.masked(text, true)
    }

    fn masked(&self, text: &str, cut: bool) -> String {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let Some(matcher) = &self.matcher else {
            return text.to_owned();
        };
        // Overlapping matches too: a secret that starts inside another must not survive.
        for found in matcher.find_overlapping_iter(text) {
            let needle = &self.needles[found.pattern().as_usize()];
            {
                let (mut start, mut end) = (found.start(), found.end());
                if needle.base64 {
                    start = text[..start]
                        .rfind(|c: char| !is_base64(c))
                        .map_or(0, |i| i + 1);
                    end += text[end..]
                        .find(|c: char| !is_base64(c))
                        .unwrap_or(text.len() - end);
                }
                ranges.push((start, end));
            }
        }
        if let Some(start) = cut.then(|| self.cut_tail(text)).flatten() {
            ranges.push((start, text.len()));
        }
        if ranges.is_empty() {
            return text.to_owned();
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            if end <= at {
                continue;
            }
            out.push_str(&text[at..start.max(at)]);
            if start >= at {
                out.push_str(MASK);
            }
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Redacts, then cuts to at most `max` characters (never the other way round, which
    /// could leave the start of a secret behind).
    pub fn text_cut(&self, text: &str, max: usize) -> String {
        let safe = self.excerpt(text);
        match safe.char_indices().nth(max) {
            Some((at, _)) => format!("{}…", &safe[..at]),
            None => safe,
        }
    }

    /// Where a text ends with the first characters of a secret's form (at least
    /// [`MIN_TAIL`] of them, not all), if it does: the earliest such start. Each possible start
    /// is looked up among the sorted forms, so the cost follows the longest form, not their
    /// number.
    fn cut_tail(&self, text: &str) -> Option<usize> {
        if text.len() < MIN_TAIL {
            return None;
        }
        let longest = self.prefixes.iter().map(String::len).max()?;
        let from = text.len().saturating_sub(longest.saturating_sub(1));
        (from..=text.len().saturating_sub(MIN_TAIL))
            .filter(|start| text.is_char_boundary(*start))
            .find(|start| {
                let tail = &text[*start..];
                let at = self.prefixes.partition_point(|p| p.as_str() < tail);
                self.prefixes[at..]
                    .iter()
                    .take_while(|p| p.starts_with(tail))
                    .any(|p| p.len() > tail.len())
            })
    }

    /// A rendered value safe to store, given the templates it came from, and the rendered
    /// values that had to be masked whole. Besides [`Redactor::value`]: a value rendered from a
    /// template that transforms a secret (anything but `{{ secret("K") }}` with encoding
    /// filters, see [`template::reads_secrets_plainly`]) is masked whole, since what it holds
    /// cannot be told apart from the secret; its rendered text is answered so it can be
    /// redacted from what the step answers or fails with (an error quoting the URL, say).
    pub fn rendered(&self, template: &Value, rendered: &Value) -> (Value, Vec<String>) {
        let mut derived = Vec::new();
        let safe = self.rendered_into(template, rendered, &mut derived);
        (safe, derived)
    }

    fn rendered_into(
        &self,
        template: &Value,
        rendered: &Value,
        derived: &mut Vec<String>,
    ) -> Value {
        match (template, rendered) {
            (Value::String(source), value) if !template::reads_secrets_plainly(source) => {
                if value.is_null() {
                    return Value::Null;
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // Each value the template interpolated, too: an HTTP client may encode a part
                // of the text (a query parameter), and only that part reaches a receiver.
                if let Value::String(rendered) = value {
                    derived.extend(
                        interpolated(source, rendered)
                            .into_iter()
                            .flatten()
                            .filter(|part| part.len() >= MIN_ENCODED && *part != text),
                    );
                }
                if text.len() >= MIN_ENCODED {
                    derived.push(text);
                }
                strings_of(value, derived);
                Value::String(MASK.into())
            }
            (Value::Object(templates), Value::Object(values)) => Value::Object(
                values
                    .iter()
                    .map(|(k, v)| {
                        let safe = match templates.get(k) {
                            _ if is_sensitive(k) && !v.is_null() => {
                                // Masked whole, and remembered: a receiver that echoes the
                                // header back (a secret's slice, a token written literally)
                                // is masked there too.
                                if let Some(t) = templates.get(k) {
                                    self.rendered_into(t, v, derived);
                                }
                                credential_parts(v, derived);
                                Value::String(MASK.into())
                            }
                            Some(t) => self.rendered_into(t, v, derived),
                            None => self.value(v),
                        };
                        (k.clone(), safe)
                    })
                    .collect(),
            ),
            (Value::Array(templates), Value::Array(values)) => Value::Array(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match templates.get(i) {
                        Some(t) => self.rendered_into(t, v, derived),
                        None => self.value(v),
                    })
                    .collect(),
            ),
            (_, value) => self.value(value),
        }
    }

    /// A copy of `value` that is safe to store and stream.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let safe = if is_sensitive(k) && !v.is_null() {
                            Value::String(MASK.into())
                        } else {
                            self.value(v)
                        };
                        (k.clone(), safe)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Every string of at least [`MIN_ENCODED`] bytes inside a value.
fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= MIN_ENCODED => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_of(v, out)),
        _ => {}
    }
}

fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_')
}

/// The per-byte encodings of a secret: percent-encoded (three common sets, upper- and
/// lower-case hex), form-encoded, JSON-escaped (plain and ASCII-only), hex.
/// Credentials shorter than this are not looked for elsewhere: `none` or `true` in an
/// `Authorization` field must not mask every `none` in a run.
const MIN_CREDENTIAL: usize = 8;

/// The value of a credential field, and the credential after its scheme (`Bearer abc...`).
fn credential_parts(value: &Value, derived: &mut Vec<String>) {
    let Value::String(text) = value else {
        return;
    };
    let text = text.trim();
    let after_scheme = text.split_once(' ').map(|(_, rest)| rest.trim());
    for part in std::iter::once(text).chain(after_scheme) {
        if part.len() >= MIN_CREDENTIAL {
            derived.push(part.to_owned());
        }
    }
}

/// The values a template's `{{ expressions }}` gave, read off the rendered text between the
/// template's literal parts: `https://x/?k={{ a }}&s={{ b }}` rendered as
/// `https://x/?k=1&s=two` gives `1` and `two`. `None` for a template with statements or
/// comments, two expressions with nothing between them, or literal parts not found in order.
fn interpolated(source: &str, rendered: &str) -> Option<Vec<String>> {
    if source.contains("{%") || source.contains("{#") {
        return None;
    }
    let mut literals = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        literals.push(&rest[..open]);
        let close = rest[open..].find("}}")? + open + 2;
        rest = &rest[close..];
    }
    literals.push(rest);
    let (first, tail) = literals.split_first()?;
    let mut at = rendered.strip_prefix(first)?;
    let mut parts = Vec::new();
    for (i, literal) in tail.iter().enumerate() {
        let last = i + 1 == tail.len();
        let part = match (last, literal.is_empty()) {
            (true, _) => at.strip_suffix(literal)?,
            (false, true) => return None,
            (false, false) => &at[..at.find(literal)?],
        };
        parts.push(part.to_owned());
        at = &at[part.len() + literal.len()..];
    }
    Some(parts)
}

fn encodings(secret: &str) -> Vec<String> {
    let mut out = Vec::new();
    for set in PERCENT_SETS {
        let upper = utf8_percent_encode(secret, set).to_string();
        out.push(lower_escapes(&upper, '%'));
        out.push(upper);
    }
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    out.push(lower_escapes(&form, '%'));
    out.push(form);
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json[1..json.len() - 1].to_owned();
    out.push(json.replace('/', "\\/"));
    let html_safe = [
        ('<', "\\u003c"),
        ('>', "\\u003e"),
        ('&', "\\u0026"),
        ('\'', "\\u0027"),
    ]
    .iter()
    .fold(json.clone(), |acc, (c, escape)| acc.replace(*c, escape));
    out.push(html_safe);
    let ascii: String = json
        .chars()
        .flat_map(|c| match c.is_ascii() {
            true => vec![c.to_string()],
            false => {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect();
    out.push(ascii);
    out.push(json);
    // A receiver that quotes the request body in its own JSON error escapes those forms once
    // more (`\"` becomes `\\\"`, `\u0026` becomes `\\u0026`).
    // A value written with `tojson` into a JSON body and quoted back is three levels deep.
    let mut level: Vec<String> = out[out.len() - 4..].to_vec();
    for _ in 0..2 {
        level = level
            .iter()
            .filter(|form| form.contains(['\\', '"']))
            .filter_map(|form| {
                let again = serde_json::to_string(form).ok()?;
                Some(again[1..again.len() - 1].to_owned())
            })
            .collect();
        out.extend(level.iter().cloned());
    }
    out.push(hex::encode(secret.as_bytes()));
    out.push(hex::encode_upper(secret.as_bytes()));
    // Non-ASCII sent in a header and read back as Latin-1 (as HTTP/1.1 servers read header
    // bytes): `é` comes back as `Ã©`.
    if !secret.is_ascii() {
        let latin1: String = secret.bytes().map(char::from).collect();
        let json = serde_json::to_string(&latin1).unwrap_or_default();
        out.push(json[1..json.len() - 1].to_owned());
        out.push(latin1);
    }
    out
}

/// `%2B` → `%2b`: the same bytes with lower-case hex digits.
fn lower_escapes(text: &str, mark: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hex_left = 0;
    for c in text.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            out.push(c);
            if c == mark {
                hex_left = 2;
            }
        }
    }
    out
}

/// The base64 characters that depend on the secret's bytes alone, for each of the three
/// offsets the secret can start at inside a longer encoded text, in the standard and the
/// URL-safe alphabet.
fn base64_cores(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(secret);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
        let first = (8 * offset).div_ceil(6);
        let last = 8 * (offset + secret.len()) / 6;
        if last > first {
            let core = encoded[first..last].to_owned();
            cores.push(core.replace('+', "-").replace('/', "_"));
            cores.push(core);
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_and_credential_fields_are_masked() {
        let r = Redactor::new(["sk-live-123".to_owned(), String::new()]);
        let input = json!({
            "url": "https://api.example.com/v1?key=sk-live-123",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Content-Type": "application/json"},
            "body": {"user": {"password": "hunter2", "refresh_token": "r", "name": "Ada"}, "prompt_tokens": 12},
            "list": ["sk-live-123"],
        });
        assert_eq!(
            r.value(&input),
            json!({
                "url": "https://api.example.com/v1?key=[redacted]",
                "headers": {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "Content-Type": "application/json"},
                "body": {"user": {"password": "[redacted]", "refresh_token": "[redacted]", "name": "Ada"}, "prompt_tokens": 12},
                "list": ["[redacted]"],
            })
        );
        assert_eq!(r.text("error near sk-live-123!"), "error near [redacted]!");
    }

    /// What a template or HTTP client can make of a secret, computed with the tools that
    /// make them (minijinja's filters, serde_json, base64), not with the redactor's code.
    fn encode(secret: &str, how: usize, user: &str) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let env = minijinja::Environment::new();
        let render = |template: &str| {
            env.render_str(template, minijinja::context! { s => secret })
                .unwrap()
        };
        match how {
            0 => secret.to_owned(),
            1 => render("{{ s | urlencode }}"),
            2 => form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            3 => serde_json::to_string(secret).unwrap(),
            4 => render("{{ s | tojson }}"),
            5 => STANDARD.encode(secret),
            6 => URL_SAFE_NO_PAD.encode(secret),
            7 => format!("Basic {}", STANDARD.encode(format!("{user}:{secret}"))),
            8 => URL_SAFE.encode(format!("{user}:{secret}")),
            9 => hex::encode(secret),
            11 => serde_json::to_string(&serde_json::to_string(secret).unwrap()).unwrap(),
            12 => serde_json::to_string(&render("{{ s | tojson }}")).unwrap(),
            13 => {
                let mut url = reqwest::Url::parse("https://api.example.com/v1").unwrap();
                url.set_query(Some(&format!("key={secret}")));
                url.query().unwrap().to_owned()
            }
            _ => format!("  {secret}\n").trim().to_owned(),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn no_encoding_of_a_secret_survives(
            secret in "[ -~]{8,40}",
            how in 0usize..14,
            user in "[a-z]{0,7}",
            before in "[ -~]{0,30}",
            after in "[ -~]{0,30}",
        ) {
            let redactor = Redactor::new([secret.clone()]);
            let encoded = encode(&secret, how, &user);
            let text = format!("{before}{encoded}{after}");
            let safe = redactor.text(&text);
            proptest::prop_assert!(!safe.contains(&encoded), "{encoded} in {safe}");
            proptest::prop_assert!(!safe.contains(&secret), "{secret} in {safe}");
            let stored = redactor.value(&json!({"body": text, "list": [text]}));
            proptest::prop_assert!(!stored.to_string().contains(&secret));
        }

        #[test]
        fn a_cut_never_leaves_the_start_of_a_secret(
            secret in "[!-~]{8,40}",
            how in 0usize..5,
            before in "[ -~]{0,30}",
            cut in 1usize..40,
        ) {
            let redactor = Redactor::new([secret.clone()]);
            let encoded = encode(&secret, how, "");
            // The quotes a JSON encoding adds are not part of the secret (a raw secret may
            // have its own).
            let inner = match encoded == secret {
                true => encoded.as_str(),
                false => encoded.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(&encoded),
            };
            let cut = cut.min(inner.len() - 1);
            let safe = redactor.excerpt(&format!("{before}{}", &inner[..cut]));
            for len in MIN_TAIL..inner.len() {
                proptest::prop_assert!(!safe.ends_with(&inner[..len]), "{} -> {safe}", &inner[..cut]);
            }
            let long = format!("{before}{inner}{}", "x".repeat(300));
            let cut_after = redactor.text_cut(&long, before.len() + cut);
            let start = &inner[..MIN_TAIL];
            proptest::prop_assert!(!cut_after.contains(start) || before.contains(start), "{cut_after}");
        }
    }

    #[test]
    fn values_rendered_from_a_secret_beyond_recognition_are_masked_whole() {
        let r = Redactor::new(["s3cr3t+val/ue=X&y".to_owned()]);
        let template = json!({
            "u": "{{ secret('X') | upper }}",
            "url": "https://x/?k={{ secret('X') | urlencode }}",
            "mixed": "{{ secret('X') }} and {{ secret('X') | upper }}",
            "plain": "{{ trigger.name }}",
            "headers": {"Authorization": "Bearer {{ secret('X') }}", "X-Rev": "{{ secret('X') | reverse }}"},
            "list": ["{{ secret('X')[1:] }}", "ok"],
            "split": "{{ secret('X') | split('/') | list }}",
            "escaped": "{{ secret('X') | e }}",
            "block": "{% filter upper %}{{ secret('X') }}{% endfilter %}",
        });
        let rendered = json!({
            "u": "S3CR3T+VAL/UE=X&Y",
            "url": "https://x/?k=s3cr3t%2Bval/ue%3DX%26y",
            "mixed": "s3cr3t+val/ue=X&y and S3CR3T+VAL/UE=X&Y",
            "plain": "Ada",
            "headers": {"Authorization": "Bearer s3cr3t+val/ue=X&y", "X-Rev": "y&X=eu/lav+t3rc3s"},
            "list": ["3cr3t+val/ue=X&y", "ok"],
            "split": ["s3cr3t+val", "ue=X&y"],
            "escaped": "s3cr3t+val&#x2f;ue=X&amp;y",
            "block": "S3CR3T+VAL/UE=X&Y",
        });
        let (safe, derived) = r.rendered(&template, &rendered);
        assert_eq!(
            safe,
            json!({
                "u": "[redacted]",
                "url": "https://x/?k=[redacted]",
                "mixed": "[redacted]",
                "plain": "Ada",
                "headers": {"Authorization": "[redacted]", "X-Rev": "[redacted]"},
                "list": ["[redacted]", "ok"],
                "split": "[redacted]",
                "escaped": "[redacted]",
                "block": "[redacted]",
            })
        );
        assert!(derived.contains(&"ue=X&y".to_owned()), "{derived:?}");
        let wider = r.with(derived);
        let error = "request http://127.0.0.1:9/?k=y&X=eu/lav+t3rc3s could not connect";
        assert!(
            !wider.text(error).contains("eu/lav"),
            "{}",
            wider.text(error)
        );
    }

    #[test]
    fn what_a_credential_header_held_is_masked_where_a_receiver_echoes_it() {
        let r = Redactor::new(["p@ss w/rd&X=1".to_owned(), "sk-clé-live-9f8e7d".to_owned()]);
        let template = json!({"headers": {
            "X-Api-Key": "{{ secret('S')[0:6] }}",
            "Authorization": "Bearer lit3ral-t0ken",
            "Cookie": "none",
        }});
        let rendered = json!({"headers": {
            "X-Api-Key": "p@ss w",
            "Authorization": "Bearer lit3ral-t0ken",
            "Cookie": "none",
        }});
        let (safe, derived) = r.rendered(&template, &rendered);
        assert_eq!(safe["headers"]["X-Api-Key"], MASK);
        let wider = r.with(derived);
        assert_eq!(
            wider.text(r#"HTTP 500: {"x-api-key":"p@ss w","auth":"Bearer lit3ral-t0ken","t":"lit3ral-t0ken","cookie":"none"}"#),
            r#"HTTP 500: {"x-api-key":"[redacted]","auth":"[redacted]","t":"[redacted]","cookie":"none"}"#
        );
        assert_eq!(
            r.text(r#"{"x-key":"sk-clÃ©-live-9f8e7d"}"#),
            r#"{"x-key":"[redacted]"}"#,
            "a non-ASCII secret read back as Latin-1"
        );
    }

    #[test]
    fn the_values_a_template_interpolated_are_read_between_its_literal_parts() {
        assert_eq!(
            interpolated("https://x/?k={{ a }}&s={{ b }}", "https://x/?k=1&s=two"),
            Some(vec!["1".to_owned(), "two".to_owned()])
        );
        assert_eq!(
            interpolated("{{ a }}", "whole"),
            Some(vec!["whole".to_owned()])
        );
        assert_eq!(interpolated("{{ a }}{{ b }}!", "12!"), None);
        assert_eq!(interpolated("{% if x %}{{ a }}{% endif %}", "1"), None);
        assert_eq!(interpolated("k={{ a }}", "other"), None);
    }

    #[test]
    fn the_examples_of_the_leaks_found() {
        let r = Redactor::new(["sk/live+Q7x9==".to_owned()]);
        assert_eq!(r.text("key=sk/live%2BQ7x9%3D%3D&x=1"), "key=[redacted]&x=1");
        let secret = "abcdefghijklmnopqrstuvwxyz1";
        let r = Redactor::new([secret.to_owned()]);
        let message = format!("HTTP 401: {}{secret}", "e".repeat(180));
        assert_eq!(
            r.text_cut(&message, 200),
            format!("HTTP 401: {}[redacted]", "e".repeat(180))
        );
        let cut_first: String = message.chars().take(200).collect();
        assert!(
            !r.excerpt(&cut_first).contains("abcdefgh"),
            "{}",
            r.excerpt(&cut_first)
        );
        // A receiver quoting the request body in its JSON error escapes it a second time;
        // an HTTP client writes a query with only space, `"`, `#`, `<`, `>` escaped.
        let r = Redactor::new(["sk-q\"uote-live-1a2b".to_owned()]);
        assert_eq!(
            r.text(r#"HTTP 401: {"raw":"{\"key2\": \"sk-q\\\"uote-live-1a2b\"}"}"#),
            r#"HTTP 401: {"raw":"{\"key2\": \"[redacted]\"}"}"#
        );
        let r = Redactor::new(["p@ss w/rd&X=1".to_owned()]);
        assert_eq!(
            r.text(r#"{"raw":"{\"j\": \"p@ss w/rd\\u0026X=1\"}"}"#),
            r#"{"raw":"{\"j\": \"[redacted]\"}"}"#
        );
        let sliced = r.with(vec!["p@ss w".to_owned()]);
        assert_eq!(
            sliced.text("GET /echo?slice=p@ss%20w"),
            "GET /echo?slice=[redacted]"
        );
        // `tojson` in a JSON body, quoted back by the receiver: three levels of escaping.
        assert_eq!(
            r.text(r#"{"raw":"{\"j\":\"\\\"p@ss w/rd\\\\u0026X=1\\\"\"}"}"#),
            r#"{"raw":"{\"j\":\"\\\"[redacted]\\\"\"}"}"#
        );
        // A slice of a secret inside a longer URL is masked where the client encoded it.
        let template = json!({"url": "https://h/echo?q={{ secret('S') | urlencode }}&slice={{ secret('S')[0:6] }}"});
        let rendered = json!({"url": "https://h/echo?q=p%40ss%20w%2Frd%26X%3D1&slice=p@ss w"});
        let (_, derived) = r.rendered(&template, &rendered);
        assert!(derived.contains(&"p@ss w".to_owned()), "{derived:?}");
        assert_eq!(
            r.with(derived)
                .text("HTTP 500: GET /echo?q=p%40ss%20w%2Frd%26X%3D1&slice=p@ss%20w"),
            "HTTP 500: GET /echo?q=[redacted]&slice=[redacted]"
        );
    }
}
