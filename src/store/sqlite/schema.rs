//! Schema migrations, applied in order and tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version forward. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    workflow TEXT,
    run_id INTEGER,
    data TEXT NOT NULL
);
CREATE TABLE workflows (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    published_version INTEGER,
    draft_source TEXT,
    draft_by TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE workflow_versions (
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (workflow, version)
);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    object TEXT NOT NULL,
    vals TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE field_history (
    id INTEGER PRIMARY KEY,
    record_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    workflow TEXT,
    workflow_version INTEGER,
    run_id INTEGER,
    step_id TEXT,
    ai_policy_id TEXT
);
CREATE INDEX field_history_record ON field_history (record_id, id);
CREATE TABLE applied_writes (
    key TEXT PRIMARY KEY,
    record_id INTEGER NOT NULL,
    changed TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    team TEXT NOT NULL,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    trigger TEXT NOT NULL,
    record_id INTEGER,
    origin_run INTEGER,
    idem_prefix TEXT,
    dedupe_key TEXT UNIQUE,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    due_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    budget_floor INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    failed_step TEXT
);
CREATE INDEX runs_due ON runs (due_at) WHERE status IN ('queued', 'retrying', 'waiting');
CREATE INDEX runs_lease ON runs (lease_until) WHERE status = 'running';
CREATE INDEX runs_workflow ON runs (workflow, id);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    detail TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    carried_from INTEGER,
    retry_delay_ms INTEGER
);
CREATE INDEX attempts_run ON attempts (run_id, id);
CREATE TABLE dlq (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    team TEXT NOT NULL,
    step_id TEXT NOT NULL,
    error TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    closed_at INTEGER,
    closed_by TEXT,
    close_reason TEXT,
    replay_run INTEGER
);
CREATE INDEX dlq_status ON dlq (status, id);
"#,
    r#"
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_record ON runs (record_id, id);
CREATE INDEX runs_queued ON runs (queued_at);
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    kinds TEXT NOT NULL,
    workflow TEXT,
    team TEXT,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX outbox_pending ON outbox (webhook_id, id) WHERE status = 'pending';
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL,
    webhook_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    workflow TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    fired_at INTEGER,
    resolved_at INTEGER,
    acked_at INTEGER,
    acked_by TEXT,
    silenced_until INTEGER,
    detail TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_active ON alerts (rule, workflow) WHERE state IN ('pending', 'firing');
"#,
    r#"
ALTER TABLE alerts ADD COLUMN notified_at INTEGER;
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (scope, name)
);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX notifications_pending ON notifications (channel, id) WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id, id);
CREATE TABLE notification_attempts (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id, id);
CREATE TABLE coverage (
    run_id INTEGER NOT NULL,
    notification_id INTEGER NOT NULL,
    alert_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, notification_id)
);
CREATE INDEX coverage_alert ON coverage (alert_id, run_id);
CREATE INDEX runs_failed ON runs (workflow, finished_at) WHERE status = 'failed';
"#,
    // What each idempotent record write asked for, to refuse a key reused with another body.
    r#"
ALTER TABLE applied_writes ADD COLUMN fingerprint TEXT;
"#,
];

/// Brings the database up to the newest schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
