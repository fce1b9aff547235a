//! Two versions on the same inputs: where their outcomes differ.

use crate::wire::{Comparison, InputComparison, RunStatus, TestResult, WouldCall};

/// Which calls a result makes, without the idempotency keys (they name the run).
fn calls(result: &TestResult) -> Vec<(String, WouldCall)> {
    result
        .steps
        .iter()
        .filter_map(|s| {
            let mut call = s.would_call.clone()?;
            call.headers.remove("Idempotency-Key");
            Some((s.id.clone(), call))
        })
        .collect()
}

/// Compares each input's run on the tested version (`ours`) with its run on another.
pub(super) fn compare(ours: &[TestResult], theirs: Vec<TestResult>, version: i64) -> Comparison {
    let inputs: Vec<InputComparison> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .map(|(input, (a, b))| InputComparison {
            input,
            status: a.status,
            compared_status: b.status,
            same_status: a.status == b.status,
            same_writes: a.writes == b.writes,
            same_calls: calls(a) == calls(b),
        })
        .collect();
    let n = inputs.len();
    let differ = inputs
        .iter()
        .filter(|c| !(c.same_status && c.same_writes && c.same_calls))
        .count();
    let now_fail = inputs
        .iter()
        .filter(|c| c.status == RunStatus::Failed && c.compared_status == RunStatus::Succeeded)
        .count();
    let same_writes = inputs.iter().filter(|c| c.same_writes).count();
    let same_calls = inputs.iter().filter(|c| c.same_calls).count();
    Comparison {
        version,
        results: theirs,
        summary: format!(
            "{now_fail} of {n} would now fail; {same_writes} write the same fields; {same_calls} make the same calls"
        ),
        inputs,
        differ,
        now_fail,
    }
}
