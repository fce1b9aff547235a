//! `acp demo`: the whole product in one process. An ACP server on a temporary SQLite file, the
//! sample workflows (pointed at a sandbox outside world), sample records, alert rules with
//! Slack-like and email channels, live traffic, and a scripted incident to triage.
//!
//! Time in the script and in the alert windows is divided by `--speed`, so tests can run the
//! incident in seconds.

mod scenario;
mod traffic;
pub mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::actions::Actions;
use crate::domain::alert::{ConditionDef, RuleDef, Severity};
use crate::domain::config::{ChannelDef, EmailTls, Policy};
use crate::domain::policy::PolicyConfig;
use crate::domain::validate::parse_duration;
use crate::engine::EngineConfig;
use crate::runtime::Runtime;
use crate::server::{ServerConfig, auth};
use crate::store::Store;
use crate::wire::Role;
use world::{Sandbox, World};

/// The sample workflows, compiled in so the demo runs from anywhere.
const WORKFLOWS: &[&str] = &[
    include_str!("../../assets/workflows/lead_routing.ron"),
    include_str!("../../assets/workflows/deal_stage_followup.ron"),
    include_str!("../../assets/workflows/renewal_reminder.ron"),
    include_str!("../../assets/workflows/big_deal_alert.ron"),
    include_str!("../../assets/workflows/data_hygiene.ron"),
];

/// The sample records: `[{"object": ..., "values": {...}}]`.
const RECORDS: &str = include_str!("../../assets/records/sample.json");

/// What happens in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// After about a minute the enrichment API degrades, then a bad deploy breaks big deals.
    Incident,
    /// Traffic only.
    Calm,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// No console: print the server's address, a token and the console command, and run until
    /// Ctrl-C.
    #[arg(long)]
    pub headless: bool,
    #[arg(long, value_enum, default_value_t = Scenario::Incident)]
    pub scenario: Scenario,
    /// Divide the script's times and the alert windows by this (10 runs the incident in
    /// seconds).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Records created or changed per second by the traffic generator.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Keep the demo's database in this file (default: a temporary one, removed at the end).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// A running demo.
pub struct Demo {
    pub server: String,
    pub token: String,
    pub sandbox: Sandbox,
    pub world: Arc<World>,
    runtime: Runtime,
    _dir: Option<tempfile::TempDir>,
}

/// Secrets the sample workflows ask for, all pointing into the sandbox.
fn secrets(sandbox: &Sandbox) -> BTreeMap<&'static str, String> {
    let url = &sandbox.url;
    BTreeMap::from([
        ("ENRICH_API_KEY", "demo-enrich-key".to_owned()),
        ("VERIFY_API_KEY", "demo-verify-key".to_owned()),
        ("CRM_API_KEY", "demo-crm-key".to_owned()),
        ("SLACK_SALES_WEBHOOK", format!("{url}/slack/sales")),
        (
            "SLACK_LEADERSHIP_WEBHOOK",
            format!("{url}/slack/leadership"),
        ),
        ("SLACK_CS_WEBHOOK", format!("{url}/slack/customer-success")),
        ("FORM_WEBHOOK_SECRET", traffic::FORM_SECRET.to_owned()),
    ])
}

/// The sandbox's enrichment API as workflows call it: under its own host name (`localhost`,
/// the same loopback server), so holds, limits and backpressure on it leave the sandbox's
/// other services alone.
fn enrichment_url(sandbox: &Sandbox) -> String {
    format!(
        "{}/enrich",
        sandbox.url.replace("127.0.0.1", ENRICHMENT_HOST)
    )
}

/// The enrichment API's host.
const ENRICHMENT_HOST: &str = "localhost";

/// The demo's host limit and maintenance window, as an `acp.ron` says them.
const DEMO_POLICIES: &str = r#"(
    hosts: {"localhost": (rate: "20/s", burst: 10)},
    windows: [(name: "crm-maintenance", scope: "workflow:renewal_reminder", cron: "0 2 * * SAT",
               duration: "2h", timezone: "Europe/Berlin", drain_rate: "2/s")],
)"#;

fn policies() -> anyhow::Result<PolicyConfig> {
    crate::domain::config::parse_config(DEMO_POLICIES, |_| None)
        .map(|p| p.policies)
        .map_err(|problems| anyhow::anyhow!("demo policies: {problems:?}"))
}

/// A sample workflow with its outside systems moved into the sandbox.
fn sandboxed(source: &str, sandbox: &Sandbox) -> String {
    let url = &sandbox.url;
    source
        .replace("https://enrich.example.com", &enrichment_url(sandbox))
        .replace("https://verify.example.com", &format!("{url}/verify"))
        .replace("https://crm.example.com", &format!("{url}/crm"))
        .replace("provider: \"builtin\"", "provider: \"openai\"")
}

/// `duration / speed`, never below `floor`.
fn scaled(duration: Duration, speed: f64, floor: Duration) -> Duration {
    duration.div_f64(speed.max(0.01)).max(floor)
}

/// The demo's alerting: a failure-rate rule and a dead-letter rule for every workflow, sent to
/// the sandbox's Slack-like sink and SMTP server.
fn policy(sandbox: &Sandbox, server: &str, speed: f64) -> anyhow::Result<Policy> {
    let window = scaled(Duration::from_secs(300), speed, Duration::from_secs(10));
    let window = humantime::format_duration(window).to_string();
    let rules = vec![
        RuleDef {
            name: "failure_rate".into(),
            severity: Severity::Critical,
            when: ConditionDef::FailureRate {
                above: 0.25,
                min_runs: 8,
                window: window.clone(),
            },
            after: None,
        },
        // A rare workflow (big deals) never reaches failure_rate's 8 runs: this one sees it
        // failing throughout.
        RuleDef {
            name: "failing_throughout".into(),
            severity: Severity::Critical,
            when: ConditionDef::FailureRate {
                above: 0.75,
                min_runs: 3,
                window,
            },
            after: None,
        },
        RuleDef {
            name: "dead_letters".into(),
            severity: Severity::Warning,
            when: ConditionDef::DlqDepth { above: 25 },
            after: None,
        },
    ];
    let checked = rules
        .iter()
        .map(|r| r.check(parse_duration))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|problems| anyhow::anyhow!("demo rules: {problems:?}"))?;
    Ok(Policy {
        public_url: Some(server.to_owned()),
        link_ttl: crate::domain::config::DEFAULT_LINK_TTL,
        give_up_after: crate::domain::delivery::DEFAULT_GIVE_UP_AFTER,
        renotify: Duration::from_secs(600),
        group_interval: scaled(Duration::from_secs(60), speed, Duration::from_secs(2)),
        resolve_after: scaled(Duration::from_secs(60), speed, Duration::from_secs(5)),
        notify_within: Duration::from_secs(120),
        channels: BTreeMap::from([
            (
                "slack".to_owned(),
                ChannelDef::Slack {
                    url: format!("{}/slack/oncall", sandbox.url),
                },
            ),
            (
                "email".to_owned(),
                ChannelDef::Email {
                    host: "127.0.0.1".into(),
                    port: Some(sandbox.smtp_port),
                    tls: EmailTls::None,
                    from: "acp-demo@example.com".into(),
                    to: vec!["oncall@example.com".into()],
                    username: None,
                    password: None,
                },
            ),
        ]),
        routes: Vec::new(),
        rules: checked,
        team_rules: BTreeMap::new(),
        rule_defs: rules,
        team_rule_defs: BTreeMap::new(),
        policies: policies()?,
    })
}

impl Demo {
    /// Starts everything; the traffic and the scenario run in the background.
    pub async fn start(args: &DemoArgs) -> anyhow::Result<Self> {
        let (dir, db) = match &args.db {
            Some(db) => (None, db.clone()),
            None => {
                let dir = tempfile::tempdir().context("creating a temporary folder")?;
                let db = dir.path().join("demo.db");
                (Some(dir), db)
            }
        };
        let world = Arc::new(World::default());
        let sandbox = world::start(world.clone())
            .await
            .context("starting the sandbox")?;
        let store = crate::store::open(&format!("sqlite://{}", db.display()))
            .with_context(|| format!("opening {}", db.display()))?;
        let actions = Actions::new(
            Some(format!("{}/ai/v1", sandbox.url)),
            Some("demo-ai-key".into()),
        )
        .map_err(anyhow::Error::msg)?;
        let secrets = secrets(&sandbox);
        let config = EngineConfig {
            secrets: Arc::new(move |name: &str| secrets.get(name).cloned()),
            policies: policies()?,
            ..EngineConfig::default()
        };
        let runtime = Runtime::start(store.clone(), config, actions).await?;
        let engine = runtime.engine();
        for source in WORKFLOWS {
            let key = engine
                .save_draft(&sandboxed(source, &sandbox), "acp demo")
                .await?;
            if let Err(e) = engine.publish(&key, "acp demo").await {
                tracing::debug!(workflow = %key, "not published again: {e}");
            }
        }
        let store_dyn: Arc<dyn Store> = store.clone();
        let token = match std::env::var("ACP_ADMIN_TOKEN").ok() {
            Some(given) => {
                auth::bootstrap_admin(store_dyn.as_ref(), Some(given.clone())).await?;
                given
            }
            None => {
                auth::create_token(store_dyn.as_ref(), "demo", Role::Admin, None)
                    .await?
                    .token
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = format!("http://{}", listener.local_addr()?);
        let alert_every = scaled(
            Duration::from_secs(5),
            args.speed,
            Duration::from_millis(250),
        );
        let config = ServerConfig {
            alerting: Arc::new(policy(&sandbox, &server, args.speed)?),
            alert_every,
            evaluator_stale_after: alert_every * 6,
            webhook_retry_initial: Duration::from_millis(500),
            webhook_retry_max: Duration::from_secs(10),
            ..ServerConfig::default()
        };
        runtime.serve(listener, config);
        let shutdown = runtime.shutdown_token();
        let client = traffic::Client::new(&server, &token);
        traffic::seed(&client, RECORDS)
            .await
            .context("loading the sample records")?;
        tokio::spawn(traffic::run(client.clone(), args.rate, shutdown.clone()));
        if args.scenario == Scenario::Incident {
            tokio::spawn(scenario::incident(
                client,
                world.clone(),
                args.speed,
                shutdown.clone(),
            ));
        }
        Ok(Self {
            server,
            token,
            sandbox,
            world,
            runtime,
            _dir: dir,
        })
    }

    /// The lines `--headless` prints.
    pub fn banner(&self) -> String {
        format!(
            "ACP demo running\n  server:  {}\n  token:   {}\n  sandbox: {}\n  console: acp console --server {} --token {} --sandbox {}\n  fix the sandbox: curl -X POST {}/control/fix\n  Slack-like sink: curl {}/slack (each message's \"Open the failed runs\" link opens without a token)\n",
            self.server,
            self.token,
            self.sandbox.url,
            self.server,
            self.token,
            self.sandbox.url,
            self.sandbox.url,
            self.sandbox.url
        )
    }

    /// Stops traffic, the server and the engine; the temporary folder goes with `self`.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.runtime.stop().await?;
        Ok(())
    }
}
