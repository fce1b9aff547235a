//! Templates and expressions (minijinja): the shared environment, static analysis of what a
//! template reads, and rendering of JSON trees where every string is a template.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

mod limits;

pub use limits::{
    MAX_EXPRESSION_BYTES, MAX_FUEL, MAX_NESTING, MAX_OPERATORS, MAX_RENDERED_BYTES,
    MAX_TEMPLATE_BYTES, check_limits,
};

/// Looks a secret up by name (the server reads the environment).
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Names a template may read besides its variables: minijinja's global functions and ours.
const GLOBAL_FUNCTIONS: &[&str] = &["secret", "range", "dict", "debug"];

/// Secret names with this prefix are the server's own settings (`ACP_ADMIN_TOKEN`,
/// `ACP_AI_KEY`...), never a workflow's: templates may not read them.
pub const RESERVED_SECRET_PREFIX: &str = "ACP_";

/// The variables every template and expression sees.
pub const ROOTS: &[&str] = &["trigger", "steps", "run"];

/// Builds the environment shared by validation and execution: strict undefined (a missing
/// field is an error, not an empty string), a `secret(name)` function, and the null rule of
/// business text: `null` renders as nothing (never `None`) and `default(x)` replaces `null`
/// as well as a missing value (`default(x, true)` also replaces empty and false values).
pub fn environment(secrets: SecretLookup) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(MAX_FUEL));
    // Errors keep the span of what failed, so an undefined value can be named.
    env.set_debug(true);
    // No state carried across statements: with `namespace`, `set` and macros a template could
    // double a string on every loop turn or call.
    env.remove_global("namespace");
    // Filters whose output can outgrow their input many times over, bounded by what they
    // would build before they build it.
    env.add_filter("replace", bounded_replace);
    env.add_filter("join", bounded_join);
    env.add_filter("indent", bounded_indent);
    // A Slack message's text escapes what it interpolates (see [`render_mrkdwn`]).
    env.set_auto_escape_callback(|name| match name {
        MRKDWN => minijinja::AutoEscape::Custom(MRKDWN),
        _ => minijinja::AutoEscape::None,
    });
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        if state.auto_escape() == minijinja::AutoEscape::Custom(MRKDWN) {
            let text = value.to_string();
            let text = match value.is_safe() {
                true => text,
                false => escape_mrkdwn(&text),
            };
            return out.write_str(&text).map_err(minijinja::Error::from);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter(
        "default",
        |value: minijinja::Value, other: Option<minijinja::Value>, lax: Option<bool>| {
            let missing = value.is_undefined() || value.is_none();
            if missing || (lax.unwrap_or(false) && !value.is_true()) {
                other.unwrap_or_else(|| minijinja::Value::from(""))
            } else {
                value
            }
        },
    );
    env.add_function("secret", move |name: String| {
        if name.starts_with(RESERVED_SECRET_PREFIX) {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("secret `{name}`: {}", reserved_secret()),
            ));
        }
        secrets(&name).ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("secret `{name}` is not set"),
            )
        })
    });
    env
}

fn too_large(what: &str) -> minijinja::Error {
    minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("`{what}` would build more than {MAX_RENDERED_BYTES} bytes"),
    )
}

/// minijinja's `replace`, refusing a result larger than [`MAX_RENDERED_BYTES`].
fn bounded_replace(value: String, from: String, to: String) -> Result<String, minijinja::Error> {
    let times = if from.is_empty() {
        value.chars().count() + 1
    } else {
        value.matches(from.as_str()).count()
    };
    let grows = times.saturating_mul(to.len().saturating_sub(from.len()));
    if value.len().saturating_add(grows) > MAX_RENDERED_BYTES {
        return Err(too_large("replace"));
    }
    Ok(value.replace(from.as_str(), &to))
}

/// minijinja's `join`, refusing a result larger than [`MAX_RENDERED_BYTES`].
fn bounded_join(
    value: minijinja::Value,
    joiner: Option<String>,
) -> Result<String, minijinja::Error> {
    let joiner = joiner.unwrap_or_default();
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&joiner);
        }
        match item.as_str() {
            Some(text) => out.push_str(text),
            None => out.push_str(&item.to_string()),
        }
        if out.len() > MAX_RENDERED_BYTES {
            return Err(too_large("join"));
        }
    }
    Ok(out)
}

/// minijinja's `indent(width=4, first=false, blank=false)`, refusing a result larger than
/// [`MAX_RENDERED_BYTES`].
fn bounded_indent(
    value: String,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
) -> Result<String, minijinja::Error> {
    let width = width.unwrap_or(4);
    let lines = value.lines().count().max(1);
    if value.len().saturating_add(lines.saturating_mul(width)) > MAX_RENDERED_BYTES {
        return Err(too_large("indent"));
    }
    let pad = " ".repeat(width);
    let mut out = String::with_capacity(value.len() + lines * width);
    for (i, line) in value.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if (i > 0 || first.unwrap_or(false)) && (blank.unwrap_or(false) || !line.trim().is_empty())
        {
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    if value.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// What a template reads.
#[derive(Debug, Default, PartialEq)]
pub struct References {
    /// Unknown top-level names (anything but `trigger`, `steps`, `run` and global functions).
    pub unknown: BTreeSet<String>,
    /// Step ids read through `steps.<id>`.
    pub steps: BTreeSet<String>,
    /// Secret names passed to `secret("...")`.
    pub secrets: BTreeSet<String>,
}

/// A template that does not compile, or that calls `secret` with a non-literal name.
#[derive(Debug, PartialEq)]
pub struct TemplateProblem {
    pub message: String,
    /// 1-based line inside the template, when minijinja knows it.
    pub line: Option<usize>,
}

/// Analyses a template (or, with `expression`, a bare expression) without rendering it.
///
/// # Errors
/// A [`TemplateProblem`] when the source is past [`check_limits`], does not compile, or calls
/// `secret` with a computed name.
pub fn references(
    env: &Environment<'static>,
    source: &str,
    expression: bool,
) -> Result<References, TemplateProblem> {
    check_limits(source, expression)?;
    let vars = if expression {
        env.compile_expression(source)
            .map_err(problem)?
            .undeclared_variables(true)
    } else {
        env.template_from_str(source)
            .map_err(problem)?
            .undeclared_variables(true)
    };
    let mut refs = References {
        secrets: secret_names(source)?,
        ..References::default()
    };
    for var in vars {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        if root == "steps" {
            if let Some(step) = parts.next() {
                refs.steps.insert(step.to_owned());
            }
        } else if !ROOTS.contains(&root) && !GLOBAL_FUNCTIONS.contains(&root) {
            refs.unknown.insert(root.to_owned());
        }
    }
    Ok(refs)
}

fn problem(err: minijinja::Error) -> TemplateProblem {
    TemplateProblem {
        message: err.detail().unwrap_or(&err.kind().to_string()).to_owned(),
        line: err.line(),
    }
}

/// Why a reserved secret name is refused.
fn reserved_secret() -> String {
    format!(
        "names starting with {RESERVED_SECRET_PREFIX} are the server's own settings, not workflow secrets"
    )
}

/// Finds the literal names in `secret("NAME")` calls. A computed name could leak a secret
/// that redaction does not know about, so it is refused.
fn secret_names(source: &str) -> Result<BTreeSet<String>, TemplateProblem> {
    let mut names = BTreeSet::new();
    for (at, _) in source.match_indices("secret(") {
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = source[at + "secret(".len()..].trim_start();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let name = quote.and_then(|q| rest[1..].split(q).next());
        match name {
            Some(name) if name.starts_with(RESERVED_SECRET_PREFIX) => {
                return Err(TemplateProblem {
                    message: format!("secret(\"{name}\"): {}", reserved_secret()),
                    line: Some(source[..at].lines().count().max(1)),
                });
            }
            Some(name) if !name.is_empty() => {
                names.insert(name.to_owned());
            }
            _ => {
                return Err(TemplateProblem {
                    message: "secret() takes a literal name, such as secret(\"API_KEY\")".into(),
                    line: Some(source[..at].lines().count().max(1)),
                });
            }
        }
    }
    Ok(names)
}

/// Filters that only encode a value in a form the redactor knows (so a secret passed
/// through them is still recognisable). Not `escape`: the redactor does not know HTML
/// entities.
const ENCODING_FILTERS: &[&str] = &["urlencode", "tojson", "trim", "string"];

/// True when every `secret(...)` in the template is a whole `{{ }}` block by itself,
/// optionally followed by encoding filters (`{{ secret("K") | urlencode }}`), and the
/// template has no `{% %}` statement: then the secret appears in the rendered text only as
/// itself or a known encoding of it. Anything else (`| upper`, slicing, `split`, `| escape`,
/// a `{% filter upper %}` around it, any statement) may transform it beyond recognition.
pub fn reads_secrets_plainly(source: &str) -> bool {
    if !source.contains("secret(") {
        return true;
    }
    let mut uses = 0;
    for block in limits::blocks(source) {
        let body = block
            .body
            .trim_matches(|c: char| c.is_whitespace() || c == '-');
        if block.statement {
            return false;
        }
        if body.contains("secret(") {
            if !is_plain_secret(body) {
                return false;
            }
            uses += 1;
        }
    }
    uses == source.matches("secret(").count()
}

fn is_plain_secret(expr: &str) -> bool {
    let Some(call) = expr.strip_prefix("secret(") else {
        return false;
    };
    let Some(end) = call.find(')') else {
        return false;
    };
    let name = call[..end].trim();
    let quoted = name.len() >= 2
        && (name.starts_with('"') && name.ends_with('"')
            || name.starts_with('\'') && name.ends_with('\''));
    let tail = call[end + 1..].trim();
    quoted
        && (tail.is_empty()
            || tail.strip_prefix('|').is_some_and(|filters| {
                filters
                    .split('|')
                    .all(|f| ENCODING_FILTERS.contains(&f.trim()))
            }))
}

/// The expression inside a string that is exactly one `{{ ... }}` and nothing else.
pub fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let plain = !inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%");
    plain.then_some(inner.trim())
}

/// Every template string inside a JSON tree, with the key path that leads to it.
pub fn strings_in(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings_in).collect(),
        Value::Object(map) => map.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

/// The name (and escape mode) of a Slack message text being rendered.
const MRKDWN: &str = "mrkdwn";

/// Text made safe inside Slack's mrkdwn: `&`, `<` and `>` escaped as Slack documents
/// (api.slack.com/reference/surfaces/formatting, "Escaping text"), so a value can neither
/// ping (`<!channel>`) nor add a link (`<https://...|label>`).
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders a Slack message's text: what the author wrote stays as written (their own
/// `<https://...|links>` and `<!here>`), every value it interpolates is escaped for mrkdwn
/// unless marked `| safe`.
///
/// # Errors
/// The template's errors, as [`render_value`] gives them.
pub fn render_mrkdwn(
    env: &Environment<'static>,
    text: &str,
    ctx: &minijinja::Value,
) -> Result<String, minijinja::Error> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_owned());
    }
    check_limits(text, false).map_err(too_big)?;
    guarded(|| render_capped(env.template_from_named_str(MRKDWN, text)?, ctx))
        .map_err(name_undefined)
}

/// Renders every string in a JSON tree against `ctx`. A string that is one `{{ expression }}`
/// keeps the expression's type; any other string renders to text.
pub fn render_value(
    env: &Environment<'static>,
    value: &Value,
    ctx: &minijinja::Value,
) -> Result<Value, minijinja::Error> {
    Ok(match value {
        Value::String(s) => render_string(env, s, ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(env, v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(env, v, ctx)?)))
                .collect::<Result<_, minijinja::Error>>()?,
        ),
        other => other.clone(),
    })
}

fn render_string(
    env: &Environment<'static>,
    text: &str,
    ctx: &minijinja::Value,
) -> Result<Value, minijinja::Error> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(Value::String(text.to_owned()));
    }
    check_limits(text, false).map_err(too_big)?;
    guarded(|| render_checked(env, text, ctx)).map_err(name_undefined)
}

/// The first path an expression reads that is not defined in `ctx` (expressions carry no
/// span to name it from).
fn undefined_path(
    env: &Environment<'static>,
    expr: &str,
    ctx: &minijinja::Value,
) -> Option<String> {
    let mut paths: Vec<String> = env
        .compile_expression(expr)
        .ok()?
        .undeclared_variables(true)
        .into_iter()
        .collect();
    paths.sort();
    paths.into_iter().find(|path| {
        env.compile_expression(&format!("{path} is defined"))
            .and_then(|e| e.eval(ctx))
            .is_ok_and(|defined| !defined.is_true())
    })
}

/// Names what was undefined (`trigger.record.values.owner_email is undefined`), where
/// minijinja only says "undefined value".
fn name_undefined(err: minijinja::Error) -> minijinja::Error {
    if err.kind() != ErrorKind::UndefinedError {
        return err;
    }
    // The span may start inside a dotted path (`.values.owner_email`): widen it to the path.
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']');
    let what = err
        .template_source()
        .zip(err.range())
        .and_then(|(source, range)| {
            let start = source
                .get(..range.start)?
                .rfind(|c: char| !path_char(c))
                .map_or(0, |i| i + 1);
            source.get(start..range.end)
        })
        .map(str::trim)
        .filter(|what| !what.is_empty());
    match what {
        Some(what) if !err.to_string().contains(what) => minijinja::Error::new(
            ErrorKind::UndefinedError,
            format!("`{what}` is undefined (use `| default(...)` where it may be missing)"),
        ),
        _ => err,
    }
}

fn render_checked(
    env: &Environment<'static>,
    text: &str,
    ctx: &minijinja::Value,
) -> Result<Value, minijinja::Error> {
    if let Some(expr) = sole_expression(text) {
        let value = env.compile_expression(expr)?.eval(ctx)?;
        if value.is_undefined() {
            let message = format!("`{expr}` is undefined");
            return Err(minijinja::Error::new(ErrorKind::UndefinedError, message));
        }
        let json = serde_json::to_value(&value)
            .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?;
        let size = match &json {
            Value::String(s) => s.len(),
            other => other.to_string().len(),
        };
        if size > MAX_RENDERED_BYTES {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("`{expr}` gives a value of more than {MAX_RENDERED_BYTES} bytes"),
            ));
        }
        return Ok(json);
    }
    Ok(Value::String(render_capped(
        env.template_from_str(text)?,
        ctx,
    )?))
}

/// Renders a template as text, stopping at [`MAX_RENDERED_BYTES`].
fn render_capped(
    template: minijinja::Template<'_, '_>,
    ctx: &minijinja::Value,
) -> Result<String, minijinja::Error> {
    let mut out = Capped(Vec::new(), false);
    template
        .render_captured_to(ctx, &mut out)
        .map_err(|e| match out.1 {
            true => minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("the template renders more than {MAX_RENDERED_BYTES} bytes"),
            ),
            false => e,
        })?;
    Ok(String::from_utf8_lossy(&out.0).into_owned())
}

/// A buffer that refuses to grow past [`MAX_RENDERED_BYTES`] (and says so in its flag),
/// which stops the render.
struct Capped(Vec<u8>, bool);

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_RENDERED_BYTES {
            self.1 = true;
            return Err(std::io::Error::other("rendered text too large"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Evaluates an expression for its truth (`when`, `condition`, trigger filters).
///
/// # Errors
/// The expression is past [`check_limits`], does not compile, fails to evaluate, or panics
/// inside minijinja (caught and reported as an error).
pub fn is_true(
    env: &Environment<'static>,
    expr: &str,
    ctx: &minijinja::Value,
) -> Result<bool, minijinja::Error> {
    check_limits(expr, true).map_err(too_big)?;
    guarded(|| Ok(env.compile_expression(expr)?.eval(ctx)?.is_true())).map_err(|err| {
        match undefined_path(env, expr, ctx).filter(|_| err.kind() == ErrorKind::UndefinedError) {
            Some(path) => minijinja::Error::new(
                ErrorKind::UndefinedError,
                format!("`{path}` is undefined (use `| default(...)` where it may be missing)"),
            ),
            None => err,
        }
    })
}

fn too_big(problem: TemplateProblem) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, problem.message)
}

/// Runs an evaluation, turning a panic into an error so one bad template cannot take the
/// server down.
fn guarded<T>(f: impl FnOnce() -> Result<T, minijinja::Error>) -> Result<T, minijinja::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = super::failure::panic_message(panic.as_ref());
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("evaluation panicked: {what}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Environment<'static> {
        environment(Arc::new(|name| {
            (name == "KEY").then(|| "s3cr3t".to_owned())
        }))
    }

    #[test]
    fn references_name_steps_secrets_and_unknown_roots() {
        let refs = references(
            &env(),
            "{{ steps.enrich.output.company.domain }} {{ secret('KEY') }} {{ trigger.x }} {{ oops.y }}",
            false,
        )
        .unwrap();
        assert_eq!(refs.steps, BTreeSet::from(["enrich".to_owned()]));
        assert_eq!(refs.secrets, BTreeSet::from(["KEY".to_owned()]));
        assert_eq!(refs.unknown, BTreeSet::from(["oops".to_owned()]));
    }

    #[test]
    fn computed_secret_names_are_refused() {
        let err = references(&env(), "{{ secret(trigger.name) }}", false).unwrap_err();
        assert!(err.message.contains("literal"), "{err:?}");
    }

    /// The server's own settings (the admin token, the AI key) are never a workflow's secret:
    /// refused when a workflow is checked, and when a template asks anyway.
    #[test]
    fn the_servers_own_settings_are_no_secrets() {
        let err =
            references(&env(), "a\n{{ secret('ACP_ADMIN_TOKEN') | list }}", false).unwrap_err();
        assert!(err.message.contains("server's own settings"), "{err:?}");
        assert_eq!(err.line, Some(2));
        let everything: SecretLookup = Arc::new(|_| Some("acp_admin".to_owned()));
        let ctx = minijinja::Value::from_serialize(json!({}));
        let refused = render_value(
            &environment(everything),
            &json!("{{ secret('ACP_ADMIN_TOKEN') }}"),
            &ctx,
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("server's own settings"),
            "{refused}"
        );
    }

    #[test]
    fn syntax_errors_carry_the_template_line() {
        let err = references(&env(), "line one\n{{ steps. }}", false).unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn sole_expressions_keep_their_json_type() {
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {"n": 4, "o": {"a": [1]}}}));
        let rendered = render_value(
            &env(),
            &json!({"n": "{{ trigger.n * 2 }}", "o": "{{ trigger.o }}", "s": "n={{ trigger.n }}", "k": 3}),
            &ctx,
        )
        .unwrap();
        assert_eq!(
            rendered,
            json!({"n": 8, "o": {"a": [1]}, "s": "n=4", "k": 3})
        );
    }

    #[test]
    fn long_operator_chains_are_refused_before_compiling() {
        let chain = vec!["1"; 10_000].join(" + ");
        let err = references(&env(), &chain, true).unwrap_err();
        assert!(err.message.contains("at most 4096 bytes"), "{err:?}");
        let short = vec!["1"; 500].join("+");
        let err = references(&env(), &short, true).unwrap_err();
        assert!(err.message.contains("at most 100 operators"), "{err:?}");
        let template = format!("line one\nline two {{{{ {chain} }}}}");
        let err = references(&env(), &template, false).unwrap_err();
        assert_eq!(err.line, Some(2));
        let ctx = minijinja::Value::from_serialize(json!({}));
        assert!(is_true(&env(), &chain, &ctx).is_err());
        assert!(render_value(&env(), &json!(format!("{{{{ {chain} }}}}")), &ctx).is_err());
        let filters = format!("{{{{ 'x'{} }}}}", " | upper".repeat(200));
        assert!(references(&env(), &filters, false).is_err());
        let dots = format!("{{{{ trigger{} }}}}", ".a".repeat(200));
        assert!(references(&env(), &dots, false).is_err());
        let parens = format!("{}1{}", "(".repeat(30), ")".repeat(30));
        let err = references(&env(), &parens, true).unwrap_err();
        assert!(err.message.contains("nest"), "{err:?}");
        let blocks = "{% for x in [1] %}".repeat(30) + &"{% endfor %}".repeat(30);
        let err = references(&env(), &blocks, false).unwrap_err();
        assert!(err.message.contains("nest"), "{err:?}");
        let huge = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(references(&env(), &huge, false).is_err());
    }

    #[test]
    fn expressions_at_the_limits_evaluate_on_a_small_stack() {
        // The deepest trees the limits allow must evaluate on a 512 KiB thread (tokio's
        // workers have 2 MiB), in debug builds too.
        let chain = vec!["1"; MAX_OPERATORS].join(" + ");
        let blocks =
            "{% if true %}".repeat(MAX_NESTING) + "ok" + &"{% endif %}".repeat(MAX_NESTING);
        let nested = format!("{}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                let env = env();
                let ctx = minijinja::Value::from_serialize(json!({}));
                assert!(references(&env, &chain, true).is_ok());
                assert!(is_true(&env, &chain, &ctx).unwrap());
                let out = render_value(&env, &json!(blocks), &ctx).unwrap();
                assert_eq!(out, json!("ok"));
                assert!(is_true(&env, &nested, &ctx).unwrap());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn plain_secret_reads_are_told_from_transformations() {
        for plain in [
            "Bearer {{ secret('K') }}",
            "https://x/?k={{ secret(\"K\") | urlencode }}&v={{ trigger.v }}",
            "{{ secret('K') | tojson }}",
            "no secret here {{ trigger.x | upper }}",
        ] {
            assert!(reads_secrets_plainly(plain), "{plain}");
        }
        for transformed in [
            "{{ secret('K') | upper }}",
            "{{ secret('K')[1:] }}",
            "{{ secret('K') ~ 'x' }}",
            "{{ secret('K') | split('/') | list }}",
            "{% if secret('K') %}x{% endif %}",
            "a {{ secret('K') }} b {{ secret('K') | reverse }}",
            "{{ 'x' ~ secret('K') }}",
            "{% filter upper %}{{ secret('K') }}{% endfilter %}",
            "{% filter reverse %}{{ secret('K') }}{% endfilter %}",
            "{% if true %}{{ secret('K') }}{% endif %}",
            "{{ secret('K') | e }}",
            "{{ secret('K') | escape }}",
        ] {
            assert!(!reads_secrets_plainly(transformed), "{transformed}");
        }
    }

    #[test]
    fn filters_that_multiply_their_input_are_bounded() {
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {
            "s": "a".repeat(60_000), "r": "b".repeat(60_000),
            "l": vec!["x"; 5_000], "t": "one\n\ntwo\n",
        }}));
        let render = |t: &str| render_value(&env(), &json!(t), &ctx);
        for bomb in [
            "{{ trigger.s | replace('a', trigger.r) | length }}",
            "{{ trigger.l | join(trigger.r) | length }}",
            "{{ trigger.s | indent(100000000) }}",
        ] {
            let err = render(bomb).unwrap_err().to_string();
            assert!(err.contains("would build more than"), "{bomb}: {err}");
        }
        assert_eq!(
            render("{{ 'a-b-c' | replace('-', '+') }}").unwrap(),
            json!("a+b+c")
        );
        assert_eq!(
            render("{{ ['a', 1, 'b'] | join(', ') }}").unwrap(),
            json!("a, 1, b")
        );
        assert_eq!(render("{{ 'ab' | join }}").unwrap(), json!("ab"));
        assert_eq!(
            render("{{ trigger.t | indent(2) }}").unwrap(),
            json!("one\n\n  two\n")
        );
        assert_eq!(
            render("{{ trigger.t | indent(2, true, true) }}").unwrap(),
            json!("  one\n  \n  two\n")
        );
    }

    #[test]
    fn long_loops_run_out_of_fuel() {
        let ctx = minijinja::Value::from_serialize(json!({}));
        let bomb = "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}";
        let err = render_value(&env(), &json!(bomb), &ctx).unwrap_err();
        assert!(err.to_string().contains("fuel"), "{err}");
        let doubling = "{% set ns = namespace(x='x') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x | length }}";
        let err = render_value(&env(), &json!(doubling), &ctx).unwrap_err();
        assert!(err.to_string().contains("not available"), "{err}");
        for refused in [
            "{% macro d(s) %}{{ s }}{% endmacro %}",
            "{% set a = 1 %}",
            "{% include 'x' %}",
        ] {
            assert!(references(&env(), refused, false).is_err(), "{refused}");
        }
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {"x": "x"}}));
        let wide = "{% for i in range(1000) %}{{ trigger.x * 10000000 }}{% endfor %}";
        let err = render_value(&env(), &json!(wide), &ctx).unwrap_err();
        assert!(err.to_string().contains("renders more than"), "{err}");
        let sole = "{{ trigger.x * 10000000 }}";
        let err = render_value(&env(), &json!(sole), &ctx).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        for literal in ["{{ 'x' * 100 }}", "{{ 3 * \"ab\" }}"] {
            let refused = references(&env(), literal, false).unwrap_err();
            assert!(
                refused.message.contains("repeated"),
                "{literal}: {refused:?}"
            );
        }
        assert!(references(&env(), "{{ trigger.amount * 1.2 }} {{ 2 ** 3 }}", false).is_ok());
        let ok = "{% for i in range(200) %}{{ i }},{% endfor %}";
        assert!(render_value(&env(), &json!(ok), &ctx).is_ok());
    }

    #[test]
    fn ordinary_expressions_are_within_the_limits() {
        let when = "trigger.record.values.stage == 'proposal' and trigger.record.values.amount > 10000 \
                    and (trigger.record.values.owner | default('')) != '' and 'a+b.c(d)' != trigger.x";
        assert!(check_limits(when, true).is_ok());
        let list = format!("{{{{ [{}] | length }}}}", vec!["1"; 500].join(", "));
        assert!(check_limits(&list, false).is_ok());
    }

    #[test]
    fn null_renders_empty_and_default_replaces_it() {
        let ctx = minijinja::Value::from_serialize(
            json!({"trigger": {"owner": null, "n": 0, "name": "Ada"}}),
        );
        let render = |t: &str| render_value(&env(), &json!(t), &ctx).unwrap();
        assert_eq!(render("Owner: {{ trigger.owner }}"), json!("Owner: "));
        assert_eq!(
            render("Owner: {{ trigger.owner | default('unassigned') }}"),
            json!("Owner: unassigned")
        );
        assert_eq!(
            render("{{ trigger.owner | default('unassigned') }}"),
            json!("unassigned")
        );
        assert_eq!(render("{{ trigger.missing | default('x') }}"), json!("x"));
        assert_eq!(render("{{ trigger.name | default('x') }}"), json!("Ada"));
        assert_eq!(render("n={{ trigger.n | default(7) }}"), json!("n=0"));
        assert_eq!(render("n={{ trigger.n | default(7, true) }}"), json!("n=7"));
        assert_eq!(
            render("{{ trigger.owner }}"),
            json!(null),
            "a sole expression keeps JSON null"
        );
    }

    #[test]
    fn undefined_values_are_named() {
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {"record": {"values": {}}}}));
        let err = render_value(
            &env(),
            &json!("Owner: {{ trigger.record.values.owner_email }}"),
            &ctx,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`trigger.record.values.owner_email` is undefined"),
            "{err}"
        );
        let err = is_true(&env(), "trigger.record.values.stage == 'x'", &ctx)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trigger.record.values.stage"), "{err}");
    }

    #[test]
    fn missing_fields_and_secrets_are_errors() {
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {}}));
        assert!(render_value(&env(), &json!("{{ trigger.nope }}"), &ctx).is_err());
        assert!(render_value(&env(), &json!("{{ secret('OTHER') }}"), &ctx).is_err());
        let ok = render_value(&env(), &json!("Bearer {{ secret('KEY') }}"), &ctx).unwrap();
        assert_eq!(ok, json!("Bearer s3cr3t"));
    }
}
