//! Limits that keep any template safe to evaluate: size, operators per expression, nesting,
//! and the statements step templates may use. Checked at validation (with positions) and
//! before every evaluation.

use super::TemplateProblem;

/// Largest template string, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest bare expression (`when`, a trigger `filter`, `Condition`), in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4 * 1024;
/// Most operators (`+`, `.`, `|`, `[`, `(`, `==`, `and`, ...) in one expression or `{{ }}` /
/// `{% %}` block. minijinja parses an operator chain into a tree as deep as the chain is long
/// and walks it recursively, so a long chain would overflow the stack.
pub const MAX_OPERATORS: usize = 100;
/// Deepest nesting of brackets in one expression, and of `{% if %}`/`{% for %}`-style blocks.
pub const MAX_NESTING: usize = 20;
/// Most instructions one evaluation may execute (minijinja's fuel): loops cannot run long
/// (a `for` over `range(100000)` twice nested runs out at once). Ordinary step templates use
/// a few hundred.
pub const MAX_FUEL: u64 = 50_000;

/// Checks the size limits above; templates and expressions past them are never compiled.
///
/// # Errors
/// A [`TemplateProblem`] naming the limit and the template line where it is exceeded.
pub fn check_limits(source: &str, expression: bool) -> Result<(), TemplateProblem> {
    let (max_bytes, what) = if expression {
        (MAX_EXPRESSION_BYTES, "an expression")
    } else {
        (MAX_TEMPLATE_BYTES, "a template")
    };
    if source.len() > max_bytes {
        return Err(TemplateProblem {
            message: format!(
                "{what} may be at most {max_bytes} bytes; this one has {}",
                source.len()
            ),
            line: Some(1),
        });
    }
    if expression {
        return check_expression(source).map_err(|limit| TemplateProblem {
            message: limit.to_string(),
            line: Some(1),
        });
    }
    let mut depth = 0usize;
    for block in blocks(source) {
        let line = source[..block.at].lines().count().max(1);
        let fail = |message| TemplateProblem {
            message,
            line: Some(line),
        };
        check_expression(block.body).map_err(|limit| fail(limit.to_string()))?;
        if block.statement {
            let word = block
                .body
                .trim_matches(|c: char| c.is_whitespace() || c == '-' || c == '+');
            let word = word.split_whitespace().next().unwrap_or_default();
            if REFUSED_TAGS.contains(&word) {
                return Err(fail(format!(
                    "`{{% {word} %}}` is not available in step templates (only if, for, filter, \
                     with, raw)"
                )));
            }
            if word.starts_with("end") {
                depth = depth.saturating_sub(1);
            } else if BLOCK_TAGS.contains(&word) {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(fail(format!("blocks may nest at most {MAX_NESTING} deep")));
                }
            }
        }
    }
    Ok(())
}

/// Tags that open a block closed by `{% end... %}`.
const BLOCK_TAGS: &[&str] = &["if", "for", "filter", "with", "autoescape", "raw"];

/// Statements step templates may not use: they carry state from one statement to the next
/// (or load other templates), which lets a short template build an enormous value.
const REFUSED_TAGS: &[&str] = &[
    "set", "macro", "call", "include", "import", "from", "extends", "block",
];

/// Most text one template renders, in bytes (4 MiB).
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// The source with every string literal's contents blanked (quotes kept), so the checks
/// below see only operators, names and brackets.
fn blank_literals(source: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(source.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                    continue;
                }
                out.push(' ');
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// True when `*` has a string literal on either side (`'x' * 100000000`).
fn repeats_a_literal(chars: &[char]) -> bool {
    let is_quote = |c: &&char| **c == '\'' || **c == '"';
    chars.iter().enumerate().any(|(i, c)| {
        let operand = |c: &&char| !c.is_whitespace() && **c != '*';
        *c == '*'
            && (chars[..i]
                .iter()
                .rev()
                .find(operand)
                .is_some_and(|c| is_quote(&c))
                || chars[i + 1..]
                    .iter()
                    .find(operand)
                    .is_some_and(|c| is_quote(&c)))
    })
}

/// An expression over the limits that keep rendering bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionLimit {
    #[error("a string literal may not be repeated with `*` (it builds text of any size)")]
    RepeatedLiteral,
    #[error(
        "an expression may have at most {MAX_OPERATORS} operators; this one has {0} \
         (split it into steps or simplify it)"
    )]
    Operators(usize),
    #[error("brackets may nest at most {MAX_NESTING} deep; this expression nests {0}")]
    Nesting(usize),
}

/// Counts operators and bracket depth outside string literals.
///
/// # Errors
/// [`ExpressionLimit`] for the first limit the expression is over.
fn check_expression(source: &str) -> Result<(), ExpressionLimit> {
    let chars = blank_literals(source);
    if repeats_a_literal(&chars) {
        return Err(ExpressionLimit::RepeatedLiteral);
    }
    let (mut operators, mut depth, mut deepest) = (0usize, 0usize, 0usize);
    let mut word = String::new();
    let count_word = |word: &mut String, operators: &mut usize| {
        if matches!(word.as_str(), "and" | "or" | "not" | "in" | "is" | "if") {
            *operators += 1;
        }
        word.clear();
    };
    for &c in &chars {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        count_word(&mut word, &mut operators);
        match c {
            '(' | '[' | '{' => {
                operators += 1;
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '~' | '|' | '.' | '<' | '>' | '=' | '!' => {
                operators += 1;
            }
            _ => {}
        }
    }
    count_word(&mut word, &mut operators);
    if operators > MAX_OPERATORS {
        return Err(ExpressionLimit::Operators(operators));
    }
    if deepest > MAX_NESTING {
        return Err(ExpressionLimit::Nesting(deepest));
    }
    Ok(())
}

/// One `{{ }}` or `{% %}` block of a template.
pub(super) struct Block<'s> {
    /// A `{% %}` statement rather than a `{{ }}` expression.
    pub statement: bool,
    /// What stands between the delimiters.
    pub body: &'s str,
    /// Byte offset of the opening delimiter in the template.
    pub at: usize,
}

/// The template's blocks in order, up to the first one left unclosed.
pub(super) fn blocks(source: &str) -> impl Iterator<Item = Block<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let rest = &source[from..];
        let open = rest.find("{{").into_iter().chain(rest.find("{%")).min()?;
        let statement = rest[open..].starts_with("{%");
        let close = if statement { "%}" } else { "}}" };
        let len = rest[open + 2..].find(close)?;
        let block = Block {
            statement,
            body: &rest[open + 2..open + 2 + len],
            at: from + open,
        };
        from += open + 2 + len + close.len();
        Some(block)
    })
}
