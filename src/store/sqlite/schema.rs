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
    // One outbox: webhook messages and alert notifications in one table (`target` is
    // `webhook:<id>` or `channel:<name>`) with one attempt log. Notifications get ids after
    // the webhook messages'; their coverage follows them, and `external_id` keeps the
    // `webhook-id` each message was sent under (`msg_N`, `ntf_N`), so a retry after the
    // upgrade is recognised by receivers as the same message. Queued webhook bodies take the
    // new shape (`data` is the event), and alert events their flat payload.
    r#"
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    external_id TEXT,
    kind TEXT NOT NULL,
    event_seq INTEGER,
    alert_id INTEGER,
    reason TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
UPDATE events SET data = json_patch(json_remove(data, '$.data'), json_extract(data, '$.data'))
    WHERE kind LIKE 'alert.%' AND json_type(data, '$.data') = 'object';
INSERT INTO messages (id, target, external_id, kind, event_seq, payload, status, attempts, due_at, created_at, delivered_at)
    SELECT id, 'webhook:' || webhook_id, 'msg_' || id, kind, event_seq,
           CASE WHEN json_type(payload, '$.data.details') IS NULL THEN payload ELSE json_object(
               'type', json_extract(payload, '$.type'),
               'timestamp', json_extract(payload, '$.timestamp'),
               'data', json_object(
                   'seq', json_extract(payload, '$.data.seq'),
                   'at', json_extract(payload, '$.timestamp'),
                   'workflow', json_extract(payload, '$.data.workflow'),
                   'run_id', json_extract(payload, '$.data.run_id'),
                   'kind', json_extract(payload, '$.type'),
                   'data', json(CASE WHEN json_extract(payload, '$.type') LIKE 'alert.%'
                                 AND json_type(payload, '$.data.details.data') = 'object'
                       THEN json_patch(json_remove(json_extract(payload, '$.data.details'), '$.data'),
                                       json_extract(payload, '$.data.details.data'))
                       ELSE json_extract(payload, '$.data.details') END)))
           END,
           status, attempts, due_at, created_at, delivered_at
    FROM outbox;
CREATE TABLE message_attempts (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
INSERT INTO message_attempts (message_id, target, at, status_code, latency_ms, error)
    SELECT outbox_id, 'webhook:' || webhook_id, at, status_code, latency_ms, error FROM deliveries ORDER BY id;
CREATE TEMP TABLE shift AS SELECT COALESCE(MAX(id), 0) AS n FROM outbox;
INSERT INTO messages (id, target, external_id, kind, alert_id, reason, payload, status, attempts, due_at, created_at, delivered_at)
    SELECT id + (SELECT n FROM shift), 'channel:' || channel, 'ntf_' || id, 'notification', alert_id, reason, payload,
           status, attempts, due_at, created_at, delivered_at
    FROM notifications;
INSERT INTO message_attempts (message_id, target, at, status_code, latency_ms, error)
    SELECT a.notification_id + (SELECT n FROM shift), 'channel:' || n.channel, a.at, a.status_code, a.latency_ms, a.error
    FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id ORDER BY a.id;
UPDATE coverage SET notification_id = -(notification_id + (SELECT n FROM shift));
UPDATE coverage SET notification_id = -notification_id;
DROP TABLE shift;
DROP TABLE outbox;
DROP TABLE deliveries;
DROP TABLE notifications;
DROP TABLE notification_attempts;
CREATE INDEX messages_pending ON messages (target, id) WHERE status = 'pending';
CREATE INDEX messages_alert ON messages (alert_id, id) WHERE alert_id IS NOT NULL;
CREATE INDEX message_attempts_target ON message_attempts (target, id);
CREATE INDEX message_attempts_of ON message_attempts (message_id, id);
"#,
    // The audit log kept whole webhook URLs, which may hold credentials, a secret path or a
    // token in the query: keep scheme, host and port only, as new entries do.
    r#"
CREATE TEMP TABLE webhook_targets AS
    SELECT id, substr(target, 9) AS url, '' AS scheme, '' AS host FROM audit_log
    WHERE action = 'webhook.create' AND target LIKE 'webhook:%://%';
UPDATE webhook_targets SET scheme = substr(url, 1, instr(url, '://') + 2), url = substr(url, instr(url, '://') + 3);
UPDATE webhook_targets SET url = replace(replace(url, '?', '/'), '#', '/') || '/';
UPDATE webhook_targets SET host = substr(url, 1, instr(url, '/') - 1);
UPDATE webhook_targets SET host = substr(host, instr(host, '@') + 1);
UPDATE audit_log SET target = (SELECT 'webhook:' || scheme || host FROM webhook_targets w WHERE w.id = audit_log.id)
    WHERE id IN (SELECT id FROM webhook_targets);
DROP TABLE webhook_targets;
"#,
    // Text search over runs' errors without scanning them: an FTS5 trigram index kept by
    // triggers (substrings of 3 characters or more; shorter ones still use LIKE).
    r#"
CREATE VIRTUAL TABLE runs_search USING fts5(error, content = 'runs', content_rowid = 'id', tokenize = 'trigram');
INSERT INTO runs_search (rowid, error) SELECT id, error FROM runs WHERE error IS NOT NULL;
CREATE TRIGGER runs_search_insert AFTER INSERT ON runs WHEN new.error IS NOT NULL BEGIN
    INSERT INTO runs_search (rowid, error) VALUES (new.id, new.error);
END;
CREATE TRIGGER runs_search_update AFTER UPDATE OF error ON runs WHEN new.error IS NOT old.error BEGIN
    INSERT INTO runs_search (runs_search, rowid, error) SELECT 'delete', old.id, old.error WHERE old.error IS NOT NULL;
    INSERT INTO runs_search (rowid, error) SELECT new.id, new.error WHERE new.error IS NOT NULL;
END;
CREATE TRIGGER runs_search_delete AFTER DELETE ON runs WHEN old.error IS NOT NULL BEGIN
    INSERT INTO runs_search (runs_search, rowid, error) VALUES ('delete', old.id, old.error);
END;
"#,
    // Rollups: sums per workflow and minute or hour, so health and the workflow list read
    // buckets instead of runs (filled from the runs already kept by `ROLLUPS_BACKFILL`).
    r#"
CREATE TABLE rollups (
    workflow TEXT NOT NULL,
    grain INTEGER NOT NULL,
    start INTEGER NOT NULL,
    team TEXT NOT NULL,
    queued INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    durations BLOB,
    failures TEXT,
    PRIMARY KEY (workflow, grain, start)
) WITHOUT ROWID;
"#,
    // Test runs are pruned on their own, shorter retention.
    r#"
CREATE INDEX runs_test ON runs (id) WHERE mode = 'test';
"#,
    // Policies: a run may be held (by a hold, a limit or a host that asked to wait); held runs
    // are claimed when due like queued ones, and a hold's release finds its runs by `held_on`.
    // `held_ms` sums the time a run spent held, which its duration (the SLA clock) leaves out.
    r#"
ALTER TABLE runs ADD COLUMN held_on TEXT;
ALTER TABLE runs ADD COLUMN held_reason TEXT;
ALTER TABLE runs ADD COLUMN held_since INTEGER;
ALTER TABLE runs ADD COLUMN held_ms INTEGER NOT NULL DEFAULT 0;
DROP INDEX runs_due;
CREATE INDEX runs_due ON runs (due_at) WHERE status IN ('queued', 'retrying', 'waiting', 'held');
CREATE INDEX runs_held ON runs (held_on, id) WHERE status = 'held';
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until INTEGER,
    drain_rate TEXT,
    dedupe_key TEXT UNIQUE,
    released_at INTEGER,
    released_by TEXT
);
CREATE INDEX holds_open ON holds (id) WHERE released_at IS NULL;
"#,
    // Bulk replays as jobs: the entries to replay in order and how far the job got, so a
    // restart continues it; its runs carry the job's id for progress counts.
    r#"
ALTER TABLE runs ADD COLUMN job_id INTEGER;
CREATE INDEX runs_job ON runs (job_id, status) WHERE job_id IS NOT NULL;
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    rate TEXT NOT NULL,
    replay_on TEXT NOT NULL,
    entries TEXT NOT NULL,
    total INTEGER NOT NULL,
    next INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    plan TEXT
);
CREATE INDEX jobs_running ON jobs (id) WHERE state = 'running';
"#,
    // Held runs per workflow (health, the alert evaluator, `GET /holds`) from the index alone:
    // with 50,000 runs held, grouping them through `runs_held` read every row (30 ms a read).
    r#"
CREATE INDEX runs_held_workflow ON runs (workflow, held_since) WHERE status = 'held';
"#,
    // Incidents, kept by the incident tracker from the event log (its own cursor): one row per
    // failure signature, the failed runs it covers (pruned with their runs), its state changes,
    // each workflow's run-level outages and its publishes and rollbacks. Small and never
    // pruned except `incident_runs`, so MTTR survives run retention.
    r#"
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    signature TEXT NOT NULL,
    workflow TEXT NOT NULL,
    team TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    resolved_at INTEGER,
    recovered INTEGER NOT NULL DEFAULT 0,
    example TEXT NOT NULL DEFAULT '',
    cause TEXT,
    versions TEXT NOT NULL DEFAULT '[]',
    records INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX incidents_active ON incidents (workflow) WHERE state != 'resolved';
CREATE INDEX incidents_last_seen ON incidents (last_seen);
CREATE TABLE incident_runs (
    incident_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    record_id INTEGER,
    at INTEGER NOT NULL,
    dlq_id INTEGER,
    dlq_open INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (incident_id, run_id)
) WITHOUT ROWID;
CREATE INDEX incident_runs_run ON incident_runs (run_id);
CREATE INDEX incident_runs_dlq ON incident_runs (dlq_id) WHERE dlq_id IS NOT NULL;
CREATE INDEX incident_runs_open ON incident_runs (incident_id) WHERE dlq_open = 1;
CREATE INDEX incident_runs_record ON incident_runs (incident_id, record_id) WHERE record_id IS NOT NULL;
CREATE TABLE incident_history (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    at INTEGER NOT NULL,
    opened_at INTEGER NOT NULL
);
CREATE INDEX incident_history_of ON incident_history (incident_id, id);
CREATE INDEX incident_history_resolved ON incident_history (at) WHERE state = 'resolved';
CREATE TABLE outages (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    team TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX outages_open ON outages (workflow) WHERE ended_at IS NULL;
CREATE INDEX outages_ended ON outages (ended_at);
CREATE TABLE workflow_changes (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    change TEXT NOT NULL,
    version INTEGER NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    previous INTEGER
);
CREATE INDEX workflow_changes_of ON workflow_changes (workflow, id);
INSERT INTO cursors (name, seq) VALUES ('incidents', 0);
"#,
    // 14: the keys that sign alert and run links (domain::link); a rotation retires them all.
    r#"
CREATE TABLE link_keys (
    id INTEGER PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
"#,
    // 15: deliveries that end (issue 18). A message is given up (`status = 'given_up'`, when
    // and why); each attempt keeps its class, the answer's first bytes and the next try; a
    // subscription whose receiver answered 410 Gone is disabled until an admin enables it.
    r#"
ALTER TABLE messages ADD COLUMN given_up_at INTEGER;
ALTER TABLE messages ADD COLUMN give_up_reason TEXT;
ALTER TABLE message_attempts ADD COLUMN class TEXT;
ALTER TABLE message_attempts ADD COLUMN answer TEXT;
ALTER TABLE message_attempts ADD COLUMN retry_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
CREATE INDEX messages_given_up ON messages (given_up_at) WHERE status = 'given_up';
"#,
];

/// The migration (counted from 1) after which the runs already kept are summed into rollups.
const ROLLUPS_BACKFILL: usize = 8;

/// Brings the database up to the newest schema.
///
/// # Errors
/// A migration that fails (the database stays at the last one that succeeded).
pub fn migrate(conn: &mut Connection) -> crate::store::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if index + 1 == ROLLUPS_BACKFILL {
            super::rollups::backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// An in-memory database migrated up to `version`.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS.iter().enumerate().take(version) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index + 1).unwrap();
        }
        conn
    }

    /// A database at schema 4 with webhook messages, notifications, their attempts and
    /// coverage moves into the one outbox with nothing lost and coverage following its
    /// notifications.
    #[test]
    fn the_two_outboxes_become_one_with_their_attempts_and_coverage() {
        let mut conn = at_version(4);
        conn.execute_batch(
            "INSERT INTO events (seq, at, kind, workflow, run_id, data) VALUES
                (1, 0, 'alert.acked', 'w', NULL, '{\"alert_id\":9,\"rule\":\"r\",\"state\":\"firing\",\"data\":{\"actor\":\"ops\"}}');
             INSERT INTO outbox (id, webhook_id, event_seq, kind, payload, status, attempts, due_at, created_at) VALUES
                (1, 3, 10, 'run.failed', '{}', 'delivered', 1, 0, 0),
                (2, 3, 11, 'run.failed', '{\"type\":\"run.failed\",\"timestamp\":\"2026-11-30T10:00:00Z\",\"data\":{\"seq\":11,\"workflow\":\"w\",\"run_id\":4,\"details\":{\"step_id\":\"a\",\"error\":null}}}', 'pending', 2, 0, 0),
                (3, 3, 12, 'alert.acked', '{\"type\":\"alert.acked\",\"timestamp\":\"2026-11-30T10:00:01Z\",\"data\":{\"seq\":12,\"workflow\":\"w\",\"run_id\":null,\"details\":{\"alert_id\":9,\"rule\":\"r\",\"state\":\"firing\",\"data\":{\"actor\":\"ops\"}}}}', 'pending', 0, 0, 0);
             INSERT INTO deliveries (outbox_id, webhook_id, at, status_code, latency_ms, error) VALUES
                (1, 3, 5, 200, 4, NULL), (2, 3, 6, 503, 4, 'HTTP 503');
             INSERT INTO notifications (id, alert_id, channel, reason, payload, status, attempts, due_at, created_at) VALUES
                (1, 9, 'slack', 'firing', '{\"title\":\"t\"}', 'delivered', 1, 0, 0),
                (2, 9, 'email', 'firing', '{\"title\":\"t\"}', 'pending', 0, 0, 0);
             INSERT INTO notification_attempts (notification_id, at, status_code, latency_ms, error) VALUES
                (1, 7, 200, 9, NULL);
             INSERT INTO coverage (run_id, notification_id, alert_id) VALUES (40, 1, 9), (40, 2, 9), (41, 1, 9);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        type Row = (i64, String, Option<i64>, Option<String>, String);
        let messages: Vec<Row> = conn
            .prepare("SELECT id, target, event_seq, reason, status FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let row = |id: i64, target: &str, seq: Option<i64>, reason: Option<&str>, status: &str| {
            (
                id,
                target.to_owned(),
                seq,
                reason.map(str::to_owned),
                status.to_owned(),
            )
        };
        assert_eq!(
            messages,
            [
                row(1, "webhook:3", Some(10), None, "delivered"),
                row(2, "webhook:3", Some(11), None, "pending"),
                row(3, "webhook:3", Some(12), None, "pending"),
                row(4, "channel:slack", None, Some("firing"), "delivered"),
                row(5, "channel:email", None, Some("firing"), "pending"),
            ]
        );
        let attempts: Vec<(i64, String, Option<i64>)> = conn
            .prepare("SELECT message_id, target, status_code FROM message_attempts ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            attempts,
            [
                (1, "webhook:3".to_owned(), Some(200)),
                (2, "webhook:3".to_owned(), Some(503)),
                (4, "channel:slack".to_owned(), Some(200)),
            ]
        );
        let coverage: Vec<(i64, i64)> = conn
            .prepare(
                "SELECT run_id, notification_id FROM coverage ORDER BY run_id, notification_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(coverage, [(40, 4), (40, 5), (41, 4)]);
        let external: Vec<String> = conn
            .prepare("SELECT external_id FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            external,
            ["msg_1", "msg_2", "msg_3", "ntf_1", "ntf_2"],
            "a message keeps the webhook-id it was sent under"
        );
        let payload = |id: i64| -> serde_json::Value {
            let text: String = conn
                .query_row("SELECT payload FROM messages WHERE id = ?", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let queued: crate::wire::WebhookPayload = serde_json::from_value(payload(2)).unwrap();
        assert_eq!(
            (queued.data.seq, queued.data.run_id, queued.data.kind()),
            (11, Some(4), crate::wire::EventKind::RunFailed),
            "a queued webhook body takes the new shape"
        );
        let alert: crate::wire::WebhookPayload = serde_json::from_value(payload(3)).unwrap();
        let crate::wire::EventBody::AlertAcked(acked) = alert.data.body else {
            panic!("not an alert.acked body");
        };
        assert_eq!(
            acked.actor.as_deref(),
            Some("ops"),
            "alert details are flat"
        );
        let event: String = conn
            .query_row("SELECT data FROM events WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        let acked = crate::wire::EventBody::from_parts(
            "alert.acked",
            serde_json::from_str(&event).unwrap(),
        )
        .unwrap();
        let crate::wire::EventBody::AlertAcked(acked) = acked else {
            panic!("not an alert.acked body");
        };
        assert_eq!(
            acked.actor.as_deref(),
            Some("ops"),
            "stored alert events are flat too"
        );
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('outbox', 'deliveries', 'notifications', 'notification_attempts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }

    #[test]
    fn webhook_urls_in_the_audit_log_keep_only_their_origin() {
        let mut conn = at_version(5);
        conn.execute_batch(
            "INSERT INTO audit_log (at, actor, role, action, target, outcome) VALUES
                (0, 'ada', 'admin', 'webhook.create', 'webhook:http://user:pa55w0rd@127.0.0.1:18950/secret/path?token=abc', 'ok'),
                (0, 'ada', 'admin', 'webhook.create', 'webhook:https://hooks.slack.com/services/T0/B0/SECRET', 'ok'),
                (0, 'ada', 'admin', 'webhook.create', 'webhook:https://example.com?token=abc', 'ok'),
                (0, 'ada', 'admin', 'webhook.delete', 'webhook:7', 'ok'),
                (0, 'ada', 'admin', 'run.retry', 'run:3', 'ok');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let targets: Vec<String> = conn
            .prepare("SELECT target FROM audit_log ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            targets,
            [
                "webhook:http://127.0.0.1:18950",
                "webhook:https://hooks.slack.com",
                "webhook:https://example.com",
                "webhook:7",
                "run:3"
            ]
        );
    }

    /// Upgrading sums the runs already kept into rollups: counts, durations and failure
    /// signatures, test runs left out, times to their minute and hour.
    #[test]
    fn rollups_start_from_the_runs_already_kept() {
        let mut conn = at_version(7);
        let minute = 1_764_583_200_000_i64; // 2025-12-01T10:00:00Z
        conn.execute_batch(&format!(
            "INSERT INTO runs (workflow, version, team, status, mode, trigger_kind, trigger, queued_at, \
                started_at, finished_at, error) VALUES
                ('w', 1, 'qa', 'succeeded', 'live', 'manual', '{{}}', {minute}, {minute} + 10, {minute} + 110, NULL),
                ('w', 1, 'qa', 'failed', 'live', 'manual', '{{}}', {minute} + 1, {minute} + 20, {minute} + 60020,
                    '{{\"class\":\"http\",\"message\":\"HTTP 503 for lead 42\",\"retryable\":true}}'),
                ('w', 1, 'qa', 'failed', 'test', 'manual', '{{}}', {minute} + 2, {minute} + 20, {minute} + 30, NULL),
                ('w', 1, 'qa', 'queued', 'live', 'manual', '{{}}', {minute} + 3, NULL, NULL, NULL);"
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, i64, i64, i64, i64)> = conn
            .prepare(
                "SELECT grain, start, queued, succeeded, failed FROM rollups ORDER BY grain, start",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let minute_ms = crate::domain::rollup::MINUTE_MS;
        assert_eq!(
            rows,
            [
                (minute_ms, minute, 3, 1, 0),
                (minute_ms, minute + minute_ms, 0, 0, 1),
                (crate::domain::rollup::HOUR_MS, minute, 3, 1, 1),
            ]
        );
        let failures: String = conn
            .query_row(
                "SELECT failures FROM rollups WHERE grain = ?",
                [crate::domain::rollup::HOUR_MS],
                |r| r.get(0),
            )
            .unwrap();
        assert!(failures.contains("HTTP 503 for lead #"), "{failures}");
    }
}
