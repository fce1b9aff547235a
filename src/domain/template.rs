//! Templates and expressions (minijinja): the shared environment, static analysis of what a
//! template reads, and rendering of JSON trees where every string is a template.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// Looks a secret up by name (the server reads the environment).
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Names a template may read besides its variables: minijinja's global functions and ours.
const GLOBAL_FUNCTIONS: &[&str] = &["secret", "range", "dict", "namespace", "debug"];

/// The variables every template and expression sees.
pub const ROOTS: &[&str] = &["trigger", "steps", "run"];

/// Builds the environment shared by validation and execution: strict undefined (a missing
/// field is an error, not an empty string) and a `secret(name)` function.
pub fn environment(secrets: SecretLookup) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_function("secret", move |name: String| {
        secrets(&name).ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("secret `{name}` is not set"),
            )
        })
    });
    env
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
pub fn references(
    env: &Environment<'static>,
    source: &str,
    expression: bool,
) -> Result<References, TemplateProblem> {
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
    if let Some(expr) = sole_expression(text) {
        let value = env.compile_expression(expr)?.eval(ctx)?;
        if value.is_undefined() {
            let message = format!("`{expr}` is undefined");
            return Err(minijinja::Error::new(ErrorKind::UndefinedError, message));
        }
        return serde_json::to_value(&value)
            .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()));
    }
    Ok(Value::String(env.render_str(text, ctx)?))
}

/// Evaluates an expression for its truth (`when`, `condition`, trigger filters).
pub fn is_true(
    env: &Environment<'static>,
    expr: &str,
    ctx: &minijinja::Value,
) -> Result<bool, minijinja::Error> {
    Ok(env.compile_expression(expr)?.eval(ctx)?.is_true())
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
    fn missing_fields_and_secrets_are_errors() {
        let ctx = minijinja::Value::from_serialize(json!({"trigger": {}}));
        assert!(render_value(&env(), &json!("{{ trigger.nope }}"), &ctx).is_err());
        assert!(render_value(&env(), &json!("{{ secret('OTHER') }}"), &ctx).is_err());
        let ok = render_value(&env(), &json!("Bearer {{ secret('KEY') }}"), &ctx).unwrap();
        assert_eq!(ok, json!("Bearer s3cr3t"));
    }
}
