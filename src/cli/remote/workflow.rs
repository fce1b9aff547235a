//! `acp workflow list|push|publish|rollback|diff|test|pause|resume`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::super::client::Client;
use super::done;
use acp::wire::{
    Diff, MockResponse, Published, Responses, RunStatus, TestInput, TestReport, TestRequest,
    TestResult, TestStepStatus, TestVersion, WorkflowView,
};

#[derive(Subcommand)]
pub enum RemoteWorkflowCommand {
    /// Workflows with their published version.
    List,
    /// Save a RON file as its workflow's draft (and publish it with --publish).
    Push {
        file: PathBuf,
        #[arg(long)]
        publish: bool,
    },
    /// Publish a workflow's draft as its next version.
    Publish { key: String },
    /// Publish an earlier version again.
    Rollback { key: String, version: i64 },
    /// Unified diff of two versions.
    Diff { key: String, from: i64, to: i64 },
    /// Run a workflow in test mode on live records: nothing is written, sent or counted.
    /// Prints each step, the requests it would send and the per-field diff of the records it
    /// would change; exits 1 when a test run fails or, with --compare, when outcomes differ.
    Test(TestArgs),
    /// Pause a workflow: its new runs wait before their first step, running ones at their
    /// next step (a hold on `workflow:KEY`, until resumed or for a while).
    Pause {
        key: String,
        /// Why (shown beside every run it holds).
        #[arg(long)]
        reason: String,
        /// How long, e.g. `2h` (default: until resumed).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
    },
    /// Resume a paused workflow: its held runs continue, oldest first.
    Resume { key: String },
}

/// `acp workflow test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// A workflow file (a path with a `/` or ending in `.ron`; tested as it is, not saved) or
    /// the key of a workflow on the server.
    target: String,
    /// The version to test when TARGET is a key: draft, published or a number (default: the
    /// draft when there is one, else the published version). A file is tested as it is.
    #[arg(long, value_parser = parse_version)]
    version: Option<TestVersion>,
    /// Test on this record as it is now (repeatable).
    #[arg(long = "record", value_name = "ID")]
    records: Vec<i64>,
    /// Test on this trigger payload, a JSON file (repeatable).
    #[arg(long = "payload", value_name = "FILE")]
    payloads: Vec<PathBuf>,
    /// Answer step STEP with the JSON file FILE, `{"status": 200, "headers": {}, "body": ...}`
    /// (repeatable).
    #[arg(long = "mock", value_name = "STEP=FILE", value_parser = parse_mock)]
    mocks: Vec<(String, PathBuf)>,
    /// Answer steps without a mock with their last successful live response.
    #[arg(long)]
    recorded: bool,
    /// Also test on the trigger payloads of the workflow's N most recent live runs.
    #[arg(long, value_name = "N")]
    recent: Option<usize>,
    /// Run this version too (draft, published or a number) and report where outcomes differ.
    #[arg(long, value_parser = parse_version)]
    compare: Option<TestVersion>,
}

fn parse_version(text: &str) -> Result<TestVersion, String> {
    let value = text
        .parse::<i64>()
        .map_or_else(|_| json!(text), |n| json!(n));
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn parse_mock(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((step, file)) if !step.is_empty() && !file.is_empty() => {
            Ok((step.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!("`{text}` is not STEP=FILE")),
    }
}

pub async fn workflow(c: &Client, command: RemoteWorkflowCommand) -> anyhow::Result<()> {
    match command {
        RemoteWorkflowCommand::List => {
            let list: Vec<WorkflowView> = c.get("/workflows").await?;
            let holds: acp::wire::HoldList = c.get("/holds").await?;
            c.show(
                &list,
                &["key", "team", "published", "latest", "draft", "paused"],
                |l| {
                    l.iter()
                        .map(|w| {
                            let published =
                                w.published_version.map_or("-".into(), |v| v.to_string());
                            let scope = format!("workflow:{}", w.key);
                            let paused = holds
                                .holds
                                .iter()
                                .find(|h| h.scope == scope)
                                .map_or("-".into(), |h| format!("hold {}", h.id));
                            vec![
                                w.key.clone(),
                                w.team.clone(),
                                published,
                                w.latest_version.to_string(),
                                w.has_draft.to_string(),
                                paused,
                            ]
                        })
                        .collect()
                },
            )
        }
        RemoteWorkflowCommand::Push { file, publish } => {
            let (key, source) = read_workflow(&file)?;
            let saved: WorkflowView = c
                .put_text(&format!("/workflows/{key}/draft"), source)
                .await?;
            if !publish {
                return done(
                    c,
                    &saved,
                    &format!(
                        "draft of `{key}` saved; publish it with `acp workflow publish {key}`"
                    ),
                );
            }
            publish_draft(c, &key).await
        }
        RemoteWorkflowCommand::Publish { key } => publish_draft(c, &key).await,
        RemoteWorkflowCommand::Rollback { key, version } => {
            let published: Published = c
                .post(
                    &format!("/workflows/{key}/rollback"),
                    &json!({ "version": version }),
                )
                .await?;
            done(
                c,
                &published,
                &format!("`{key}` rolled back: version {version} is published"),
            )
        }
        RemoteWorkflowCommand::Test(args) => test(c, args).await,
        RemoteWorkflowCommand::Pause { key, reason, for_ } => {
            super::holds::pause(c, &key, reason, for_).await
        }
        RemoteWorkflowCommand::Resume { key } => super::holds::resume(c, &key).await,
        RemoteWorkflowCommand::Diff { key, from, to } => {
            let diff: Diff = c
                .get_with(
                    &format!("/workflows/{key}/diff"),
                    &[("from", from), ("to", to)],
                )
                .await?;
            done(c, &diff, diff.unified.trim_end())
        }
    }
}

/// Reads a workflow file and its key, with every problem as `file:line:col`.
fn read_workflow(file: &std::path::Path) -> anyhow::Result<(String, String)> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let key = acp::domain::parse_workflow(&source)
        .map(|w| w.def.key)
        .map_err(|problems| {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}:{p}", file.display()))
                .collect();
            anyhow::anyhow!(lines.join("\n"))
        })?;
    Ok((key, source))
}

/// Reads a JSON file, naming it and the place of a syntax error.
fn read_json<T: serde::de::DeserializeOwned>(file: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", file.display(), e.line(), e.column()))
}

async fn test(c: &Client, args: TestArgs) -> anyhow::Result<()> {
    let file = std::path::Path::new(&args.target);
    // A key is a bare name; a path (with a separator, or ending in .ron) is a file.
    let looks_like_path = args.target.contains(['/', '\\']) || args.target.ends_with(".ron");
    let (key, source) = if looks_like_path {
        let (key, source) = read_workflow(file)?;
        if args.version.is_some() {
            anyhow::bail!(
                "--version is for a workflow key; {} is tested as it is",
                file.display()
            );
        }
        (key, Some(source))
    } else {
        (args.target.clone(), None)
    };
    let mut inputs: Vec<TestInput> = args
        .records
        .iter()
        .map(|&record_id| TestInput::Record { record_id })
        .collect();
    for file in &args.payloads {
        inputs.push(TestInput::Payload {
            payload: read_json(file)?,
        });
    }
    let mut mocks = std::collections::BTreeMap::new();
    for (step, file) in &args.mocks {
        let mock: MockResponse = read_json(file)?;
        mocks.insert(step.clone(), mock);
    }
    let label = match &source {
        Some(_) => format!("{} (unsaved file {})", key, file.display()),
        None => key.clone(),
    };
    let request = TestRequest {
        version: args.version,
        source,
        inputs,
        mocks,
        responses: if args.recorded {
            Responses::Recorded
        } else {
            Responses::Mock
        },
        compare: args.compare,
        recent: args.recent,
    };
    let report: TestReport = c.post(&format!("/workflows/{key}/test"), &request).await?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", acp::wire::printable(&report_text(&label, &report)));
    }
    let failed = report
        .results
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .count();
    let differ = report.compare.as_ref().map_or(0, |c| c.differ);
    let inputs = report.results.len();
    match (failed, differ) {
        (0, 0) => Ok(()),
        (_, 0) => anyhow::bail!("{failed} of {inputs} test runs failed"),
        (0, _) => anyhow::bail!("{differ} of {inputs} inputs differ from the compared version"),
        _ => anyhow::bail!(
            "{failed} of {inputs} test runs failed; {differ} differ from the compared version"
        ),
    }
}

/// The report as text: per input its steps, would-be calls, diff and would-trigger list;
/// `label` names what was tested (a key, or a file).
fn report_text(label: &str, report: &TestReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = match report.version {
        0 if label != report.workflow => {
            writeln!(out, "{label}, test mode: nothing was written or sent")
        }
        0 => writeln!(
            out,
            "{label} (draft), test mode: nothing was written or sent"
        ),
        n => writeln!(
            out,
            "{label} (version {n}), test mode: nothing was written or sent"
        ),
    };
    for (n, result) in report.results.iter().enumerate() {
        let _ = writeln!(out, "\n{}", result_text(n, result));
    }
    if let Some(compare) = &report.compare {
        let against = match compare.version {
            0 => "the draft".to_owned(),
            n => format!("version {n}"),
        };
        let _ = writeln!(out, "\ncompared with {against}: {}", compare.summary);
        for input in compare
            .inputs
            .iter()
            .filter(|i| !(i.same_status && i.same_writes && i.same_calls))
        {
            let mut what = Vec::new();
            if !input.same_status {
                what.push(format!("{} → {}", input.compared_status, input.status));
            }
            if !input.same_writes {
                what.push("writes differ".to_owned());
            }
            if !input.same_calls {
                what.push("calls differ".to_owned());
            }
            let _ = writeln!(out, "  input {}: {}", input.input + 1, what.join(", "));
        }
    }
    out
}

fn result_text(n: usize, result: &TestResult) -> String {
    use std::fmt::Write;
    let input = match &result.input {
        TestInput::Record { record_id } => format!("record {record_id}"),
        TestInput::Payload { payload } => {
            let text = payload.to_string();
            match text.char_indices().nth(60) {
                Some((at, _)) => format!("payload {}…", &text[..at]),
                None => format!("payload {text}"),
            }
        }
    };
    let mut out = format!(
        "input {}: {input}: {} (test run {})\n",
        n + 1,
        result.status,
        result.run_id
    );
    if let Some(note) = &result.note {
        let _ = writeln!(out, "  note: {note}");
    }
    for step in &result.steps {
        let status = match step.status {
            TestStepStatus::NotSent => "not sent",
            TestStepStatus::NotRun => "not run",
            TestStepStatus::Succeeded => "ok",
            TestStepStatus::Failed => "FAILED",
            TestStepStatus::Skipped => "skipped",
        };
        let mut detail = String::new();
        if let Some(call) = &step.would_call {
            let _ = write!(detail, "{} {}", call.method, call.url);
            match &step.response {
                Some(r) => {
                    let _ = write!(detail, " → {} ({})", r.status, r.source);
                }
                None if step.error.is_none() => detail.push_str(" (no mock or recording)"),
                None => {}
            }
        }
        for write in &step.writes {
            let id = write
                .record_id
                .map_or_else(|| "new".to_owned(), |id| id.to_string());
            let changed = write.changed();
            let _ = write!(
                detail,
                "{} {} {id} ({changed} changed)",
                write.op, write.object
            );
        }
        if let Some(error) = &step.error {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&error.message);
        }
        let _ = writeln!(out, "  {:<16} {status:<8} {detail}", step.id);
    }
    if !result.writes.is_empty() {
        out.push_str("  would write:\n");
        for write in &result.writes {
            for (mark, line) in write.lines() {
                let _ = writeln!(out, "    {}{line}", mark.marker());
            }
        }
    }
    for hit in &result.would_trigger {
        let record = hit.record();
        let _ = writeln!(
            out,
            "  would start {} (version {}) on {record}: {} changed",
            hit.workflow,
            hit.version,
            hit.fields.join(", ")
        );
    }
    out
}

/// Publishes a workflow's draft and says which version it became.
async fn publish_draft(c: &Client, key: &str) -> anyhow::Result<()> {
    let published: Published = c
        .post(&format!("/workflows/{key}/publish"), &json!({}))
        .await?;
    done(
        c,
        &published,
        &format!("`{key}` version {} published", published.version),
    )
}
