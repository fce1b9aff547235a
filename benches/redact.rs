//! `cargo bench --bench redact`: what redaction costs a step. One step output of about
//! 256 KiB (the default stored cap) of JSON, with three secrets known to the run (each
//! redacted in ~30 encoded forms), once with no secret in it and once with secrets spread
//! through it; and the input of a step whose templates read a secret.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use acp::domain::redact::Redactor;

fn output(with_secrets: bool) -> Value {
    let items: Vec<Value> = (0..2_000)
        .map(|i| {
            let note = if with_secrets && i % 100 == 0 {
                "token sk/live+Q7x9== echoed back".to_owned()
            } else {
                format!("lead {i} from the enrichment vendor, score {}", i % 97)
            };
            json!({"id": i, "email": format!("lead{i}@example.com"), "note": note})
        })
        .collect();
    json!({ "items": items })
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new(
        [
            "sk/live+Q7x9==",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "ghp_0123456789abcdef",
        ]
        .map(String::from),
    );
    let clean = output(false);
    let dirty = output(true);
    println!("output size: {} bytes", clean.to_string().len());
    c.bench_function("redact 256 KiB output, no secret in it", |b| {
        b.iter(|| redactor.value(black_box(&clean)))
    });
    c.bench_function("redact 256 KiB output, 20 secrets in it", |b| {
        b.iter(|| redactor.value(black_box(&dirty)))
    });
    let templates = json!({"url": "https://api.example.com/v1?key={{ secret('K') | urlencode }}",
        "headers": {"Authorization": "Bearer {{ secret('K') }}"}, "body": {"q": "{{ trigger.q }}"}});
    let input = json!({"url": "https://api.example.com/v1?key=sk/live%2BQ7x9%3D%3D",
        "headers": {"Authorization": "Bearer sk/live+Q7x9=="}, "body": {"q": "acme"}});
    c.bench_function("redact a step input rendered from templates", |b| {
        b.iter(|| redactor.rendered(black_box(&templates), black_box(&input)))
    });
}

/// The outbox redacts every answer with the secrets of every destination: building that
/// redactor (once per change of the subscriptions) and redacting a 512-byte answer with it.
fn outbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbox redactor");
    group.sample_size(10);
    for subscriptions in [10, 100, 1_000] {
        let secrets: Vec<String> = (0..subscriptions)
            .flat_map(|i| {
                let key = format!("{i:0>8}MfKQ9r8GKYqrTwjUPD8ILPZIo2La");
                [format!("whsec_{key}"), key]
            })
            .collect();
        group.bench_function(format!("build, {subscriptions} subscriptions"), |b| {
            b.iter(|| Redactor::new(black_box(secrets.clone())))
        });
        let redactor = Redactor::new(secrets.clone());
        let answer = format!("{{\"error\":\"invalid {}\"}}", "x".repeat(480));
        group.bench_function(
            format!("512-byte answer, {subscriptions} subscriptions"),
            |b| b.iter(|| redactor.text_cut(black_box(&answer), 300)),
        );
    }
    group.finish();
}

criterion_group!(benches, redaction, outbox);
criterion_main!(benches);
