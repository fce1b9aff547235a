//! `cargo bench --bench console`: building and diffing a 200x50 frame with 100,000 runs in the
//! console's state, and the bytes a frame writes to the terminal: none when idle (nothing is
//! drawn), and how many for a one-row status change.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use acp::console::keymap;
use acp::console::state::{App, Conn, Load};
use acp::console::theme;
use acp::console::views::draw;
use acp::wire::{Me, Role, RunMode, RunStatus, RunView, TriggerKind};

const RUNS: i64 = 100_000;

fn app() -> App {
    let mut app = App::new(
        "http://127.0.0.1:7700".into(),
        keymap::load("default", None).unwrap(),
        false,
    );
    app.me = Load::Loaded(Me {
        name: "bench".into(),
        role: Role::Operator,
        seq: 0,
    });
    app.conn = Conn::Live;
    let start = DateTime::<Utc>::from_timestamp(1_795_900_000, 0).unwrap();
    for id in 1..=RUNS {
        let status = if id % 10 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        app.runs.rows.insert(
            id,
            RunView {
                id,
                workflow: ["lead_routing", "deal_stage_followup", "big_deal_alert"]
                    [id as usize % 3]
                    .into(),
                version: 3,
                team: "revops".into(),
                status,
                mode: RunMode::Live,
                trigger_kind: TriggerKind::Record,
                trigger: serde_json::Value::Null,
                record_id: Some(id),
                origin_run: None,
                queued_at: start,
                started_at: Some(start),
                finished_at: Some(start + chrono::Duration::milliseconds(id % 5000)),
                next_attempt_at: None,
                attempts: 1,
                error: None,
                failed_step: None,
                dead_letter: None,
                replayed_as: None,
                held_reason: None,
            },
        );
    }
    app.runs.loaded = true;
    app.runs.changed = true;
    app.refresh_lists();
    app
}

/// Counts the bytes a terminal would receive.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn frame(c: &mut Criterion) {
    let app = app();
    let theme = theme::load("default", None).unwrap();
    let mut term = Terminal::new(ratatui::backend::TestBackend::new(200, 50)).unwrap();
    c.bench_function("frame build + diff, 200x50, 100k runs", |b| {
        b.iter(|| {
            term.draw(|f| draw(f, black_box(&app), &theme)).unwrap();
        })
    });
    c.bench_function("recompute the visible runs, 100k runs", |b| {
        let mut app = self::app();
        b.iter(|| {
            app.runs.changed = true;
            app.refresh_lists();
        })
    });

    // Bytes: a first full frame, then a frame with nothing changed, then one row changed.
    let mut app = app;
    let bytes = Counter::default();
    let sent = || bytes.0.load(Ordering::Relaxed);
    let viewport = ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 200, 50));
    let mut out = Terminal::with_options(
        CrosstermBackend::new(bytes.clone()),
        ratatui::TerminalOptions { viewport },
    )
    .unwrap();
    out.draw(|f| draw(f, &app, &theme)).unwrap();
    let full = sent();
    out.draw(|f| draw(f, &app, &theme)).unwrap();
    let unchanged = sent() - full;
    let newest = *app.runs.rows.keys().next_back().unwrap();
    app.runs.rows.get_mut(&newest).unwrap().status = RunStatus::Retrying;
    app.runs.changed = true;
    app.refresh_lists();
    let before = sent();
    out.draw(|f| draw(f, &app, &theme)).unwrap();
    let one_row = sent() - before;
    println!(
        "bytes: first_frame={full} redraw_unchanged={unchanged} (an idle 2 s tick) one_row_status_change={one_row}"
    );
}

criterion_group!(benches, frame);
criterion_main!(benches);
