//! JSON for the step inspector: pretty-printed, tokenized with syntect's JSON grammar, and
//! coloured from the theme's `json_*` slots (so every theme, `mono` included, highlights).

use std::sync::OnceLock;

use ratatui::text::{Line, Span};
use syntect::parsing::{ParseState, ScopeStack, SyntaxSet};

use super::theme::Theme;

fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// `value` pretty-printed as highlighted lines.
pub fn json(value: &serde_json::Value, theme: &Theme) -> Vec<Line<'static>> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let set = syntaxes();
    let Some(syntax) = set.find_syntax_by_extension("json") else {
        return text
            .lines()
            .map(|l| Line::styled(l.to_owned(), theme.text))
            .collect();
    };
    let mut state = ParseState::new(syntax);
    let mut stack = ScopeStack::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let with_newline = format!("{line}\n");
        let Ok(ops) = state.parse_line(&with_newline, set) else {
            lines.push(Line::styled(line.to_owned(), theme.text));
            continue;
        };
        let mut spans = Vec::new();
        let mut at = 0;
        for (offset, op) in ops {
            if offset > at {
                spans.push(Span::styled(
                    line[at..offset.min(line.len())].to_owned(),
                    style(&stack, theme),
                ));
            }
            at = offset.min(line.len());
            let _ = stack.apply(&op);
        }
        if at < line.len() {
            spans.push(Span::styled(line[at..].to_owned(), style(&stack, theme)));
        }
        lines.push(Line::from(spans));
    }
    lines
}

/// The theme slot for the innermost scope that has one.
fn style(stack: &ScopeStack, theme: &Theme) -> ratatui::style::Style {
    let scopes: Vec<String> = stack.as_slice().iter().map(|s| s.build_string()).collect();
    if scopes
        .iter()
        .any(|s| s.starts_with("meta.structure.dictionary.key"))
    {
        return theme.json_key;
    }
    for name in scopes.iter().rev() {
        if name.starts_with("string") {
            return theme.json_string;
        }
        if name.starts_with("constant.numeric") {
            return theme.json_number;
        }
        if name.starts_with("constant.language") {
            return theme.json_literal;
        }
        if name.starts_with("punctuation") {
            return theme.json_punct;
        }
    }
    theme.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_strings_and_numbers_get_their_slots() {
        let theme = super::super::theme::load("default", None).unwrap();
        let lines = json(
            &serde_json::json!({"lead": "ada", "score": 42, "ok": true}),
            &theme,
        );
        let spans: Vec<(String, ratatui::style::Style)> = lines
            .iter()
            .flat_map(|l| l.spans.iter().map(|s| (s.content.to_string(), s.style)))
            .collect();
        let style_of = |text: &str| {
            spans
                .iter()
                .find(|(t, _)| t.contains(text))
                .map(|(_, s)| *s)
        };
        assert_eq!(style_of("lead"), Some(theme.json_key));
        assert_eq!(style_of("ada"), Some(theme.json_string));
        assert_eq!(style_of("42"), Some(theme.json_number));
        assert_eq!(style_of("true"), Some(theme.json_literal));
    }
}
