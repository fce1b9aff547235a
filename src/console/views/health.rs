//! The health dashboard: the control plane's own state, per-workflow rows with sparklines of
//! throughput and failure rate, and the top failure signatures.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::Sparkline;

use super::super::state::App;
use super::super::theme::Theme;
use super::table::{Columns, col, framed, list, loading, number_width};
use super::{ago, short_duration};
use crate::wire::DeliveryWarning;

/// The success metrics over 7 days: runs per week, MTTR and MTTA (median and p90), the
/// healthy share of workflows.
fn success_metrics<'a>(app: &App, theme: &Theme) -> Line<'a> {
    let Some(summary) = app.summary.get() else {
        return Line::styled(" 7 days: loading…", theme.dim);
    };
    let t = &summary.totals;
    let secs = |s: Option<f64>| s.map_or("-".to_owned(), |s| short_duration((s * 1000.0) as i64));
    Line::from(vec![
        Span::styled(" 7d: ", theme.header),
        Span::styled(format!("{:.0} runs/wk · ", t.runs_per_week), theme.text),
        Span::styled(
            format!(
                "MTTR {} p90 {} · MTTA {} · ",
                secs(t.mttr_p50_s),
                secs(t.mttr_p90_s),
                secs(t.mtta_p50_s)
            ),
            theme.text,
        ),
        Span::styled(
            format!(
                "healthy {}/{} {:.0}%",
                t.healthy_workflows, t.workflows, t.healthy_pct
            ),
            if t.healthy_workflows < t.workflows {
                theme.alert_firing
            } else {
                theme.conn_live
            },
        ),
    ])
}

/// Destinations shown that could not be delivered to; the last line says how many more.
const MAX_DELIVERY_LINES: usize = 3;

/// A line per destination ACP could not deliver to: a disabled subscription, or a target
/// whose messages were given up (the people it should have told were not told).
fn delivery_warnings<'a>(deliveries: &[DeliveryWarning], theme: &Theme) -> Vec<Line<'a>> {
    let line = |w: &DeliveryWarning| {
        let (state, hint) = match w.target.strip_prefix("webhook:") {
            Some(id) if w.disabled => (
                "DISABLED".to_owned(),
                format!(" · resume: POST /webhooks/{id}/enable"),
            ),
            _ => (format!("{} GIVEN UP", w.given_up), String::new()),
        };
        Line::from(vec![
            Span::styled(
                format!(" undelivered: {} {state}", w.target),
                theme.alert_firing,
            ),
            Span::styled(format!("{hint} · {}", w.reason), theme.text),
        ])
    };
    if deliveries.len() <= MAX_DELIVERY_LINES {
        return deliveries.iter().map(line).collect();
    }
    let mut lines: Vec<Line<'a>> = deliveries[..MAX_DELIVERY_LINES - 1]
        .iter()
        .map(line)
        .collect();
    lines.push(Line::styled(
        format!(
            " undelivered: {} more destinations (GET /health)",
            deliveries.len() + 1 - MAX_DELIVERY_LINES
        ),
        theme.alert_firing,
    ));
    lines
}

pub fn health(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(health) = app.health.get() else {
        return loading(frame, area, "Health", &app.health, theme);
    };
    let reasons_height = (health.failure_reasons.len().min(6) + 3) as u16;
    let deliveries = &health.control.deliveries;
    let [control, undelivered, metrics, workflows, reasons] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(deliveries.len().min(MAX_DELIVERY_LINES) as u16),
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(reasons_height),
    ])
    .areas(area);
    frame.render_widget(success_metrics(app, theme), metrics);
    let evaluator = if health.control.evaluator_healthy {
        Span::styled("evaluator ok", theme.conn_live)
    } else {
        Span::styled(
            "evaluator LATE: alerts are not being evaluated",
            theme.conn_offline,
        )
    };
    // The evaluator has its own words above; any other loop that stalled is named.
    let stalled: Vec<&str> = health
        .control
        .loops
        .iter()
        .filter(|l| !l.healthy && l.name != "alert evaluator")
        .map(|l| l.name.as_str())
        .collect();
    let stalled = match stalled.as_slice() {
        [] => Span::raw(""),
        names => Span::styled(
            format!(" · {} STALLED", names.join(", ")),
            theme.conn_offline,
        ),
    };
    let unnotified = &health.unnotified;
    frame.render_widget(
        Line::from(vec![
            Span::styled(" control plane: ", theme.header),
            evaluator,
            stalled,
            Span::styled(format!(" · dlq {} · ", health.dlq_depth), theme.text),
            Span::styled(
                match health.held {
                    0 => String::new(),
                    n => format!("held {n} · "),
                },
                theme.run_waiting,
            ),
            Span::styled(
                format!(
                    "unnotified failures {}/{} ({:.0}%)",
                    unnotified.unnotified,
                    unnotified.failed,
                    unnotified.rate * 100.0
                ),
                if unnotified.unnotified > 0 {
                    theme.alert_firing
                } else {
                    theme.text
                },
            ),
        ]),
        control,
    );
    frame.render_widget(
        Text::from(delivery_warnings(deliveries, theme)),
        undelivered,
    );
    let team = app
        .health_team
        .as_ref()
        .map(|t| format!("team {t}"))
        .unwrap_or_else(|| "all teams".into());
    let block = framed(
        format!(
            " Workflows of {team}, last hour ({} s buckets) ",
            health.bucket_secs
        ),
        theme,
    );
    let inner = block.inner(workflows);
    frame.render_widget(block, workflows);
    let firing = app.firing();
    let row_height = 2u16;
    for (i, w) in health
        .workflows
        .iter()
        .enumerate()
        .take((inner.height / row_height) as usize)
    {
        let y = inner.y + i as u16 * row_height;
        let line_area = Rect {
            x: inner.x,
            y,
            width: inner.width,
            height: 1,
        };
        let spark_area = Rect {
            x: inner.x,
            y: y + 1,
            width: inner.width,
            height: 1,
        };
        let alerts = firing.iter().filter(|a| a.workflow == w.workflow).count();
        let p95 = w.p95_ms.map(short_duration).unwrap_or_else(|| "-".into());
        frame.render_widget(
            Line::from(vec![
                Span::styled(format!("{:<22.22}", w.workflow), theme.text),
                Span::styled(format!(" {:>5} runs ", w.counts.runs), theme.dim),
                Span::styled(
                    format!("{:>5.1}% failed ", w.counts.failure_rate * 100.0),
                    if w.counts.failed > 0 {
                        theme.run_failed
                    } else {
                        theme.run_succeeded
                    },
                ),
                Span::styled(format!("p95 {p95:<8} "), theme.dim),
                Span::styled(
                    format!("dlq {:<3} ", w.counts.dlq_depth),
                    if w.counts.dlq_depth > 0 {
                        theme.dlq_badge
                    } else {
                        theme.dim
                    },
                ),
                Span::styled(
                    match w.counts.held {
                        0 => String::new(),
                        n => format!("held {n} "),
                    },
                    theme.run_waiting,
                ),
                Span::styled(
                    if alerts > 0 {
                        format!("{alerts} firing")
                    } else {
                        String::new()
                    },
                    theme.alert_firing,
                ),
            ]),
            line_area,
        );
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(spark_area);
        let throughput: Vec<u64> = w.throughput.iter().map(|v| *v as u64).collect();
        // Failure rate per bucket, in percent (failures over runs started in the bucket).
        let failures: Vec<u64> = w
            .failures
            .iter()
            .zip(&w.throughput)
            .map(|(failed, runs)| {
                (failed * 100).checked_div(*runs).unwrap_or(0).clamp(0, 100) as u64
            })
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&throughput)
                .style(theme.spark_throughput),
            left,
        );
        frame.render_widget(
            Sparkline::default()
                .data(&failures)
                .style(theme.spark_failures),
            right,
        );
    }
    let rows = health
        .failure_reasons
        .iter()
        .map(|r| {
            (
                vec![
                    Span::raw(r.count.to_string()),
                    Span::raw(r.workflow.clone()),
                    Span::raw(format!("{}–{}", ago(&r.first_seen), ago(&r.last_seen))),
                    Span::styled(r.signature.clone(), theme.error),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        reasons,
        Columns {
            title: " Top failure reasons ".into(),
            cols: vec![
                col(
                    "COUNT",
                    number_width(6, health.failure_reasons.iter().map(|r| r.count)),
                    9,
                ),
                col("WORKFLOW", 20, 8),
                col("FIRST–LAST SEEN", 17, 5),
            ],
            last: "SIGNATURE",
            last_min: super::table::ERROR_MIN,
        },
        rows,
        usize::MAX,
        theme,
    );
}
