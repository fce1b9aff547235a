//! The dead-letter entry lifecycle: an entry opens when a run exhausts its retries (or fails
//! permanently) and closes once, by a replay, a discard or a retry of the run in place.

use crate::wire::{DlqAdded, DlqDiscarded, DlqReplayed, DlqStatus, EventBody, StepError};

/// What can happen to a dead-letter entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlqStep {
    /// A new run replaces the failed one.
    Replay,
    /// Someone closed it with a reason.
    Discard,
    /// The failed run itself was retried (an entry that is not open stays as it is).
    Retry,
}

/// A step an entry's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is already {status}")]
pub struct DlqRefused {
    pub status: DlqStatus,
    pub step: DlqStep,
}

/// The status after `step`, or why not.
///
/// | step | open | replayed, discarded, retried |
/// |---|---|---|
/// | replay | replayed | — |
/// | discard | discarded | — |
/// | retry | retried | unchanged |
///
/// A run that fails again after a retry reopens its entry (the store's upsert).
///
/// # Errors
/// [`DlqRefused`] for a dash in the table.
pub fn dlq_next(status: DlqStatus, step: DlqStep) -> Result<DlqStatus, DlqRefused> {
    match (status, step) {
        (DlqStatus::Open, DlqStep::Replay) => Ok(DlqStatus::Replayed),
        (DlqStatus::Open, DlqStep::Discard) => Ok(DlqStatus::Discarded),
        (DlqStatus::Open, DlqStep::Retry) => Ok(DlqStatus::Retried),
        (closed, DlqStep::Retry) => Ok(closed),
        _ => Err(DlqRefused { status, step }),
    }
}

/// The event of an entry opened (or reopened) for a run that failed at `step_id`.
pub fn added_event(dlq_id: i64, step_id: &str, error: &StepError) -> EventBody {
    EventBody::DlqAdded(DlqAdded {
        dlq_id,
        step_id: step_id.to_owned(),
        class: error.class,
        message: error.message.clone(),
    })
}

/// The event of an entry replayed as run `replay_run`.
pub fn replayed_event(dlq_id: i64, replay_run: i64, actor: &str) -> EventBody {
    EventBody::DlqReplayed(DlqReplayed {
        dlq_id,
        replay_run,
        actor: actor.to_owned(),
    })
}

/// The event of an entry discarded with a person's reason.
pub fn discarded_event(dlq_id: i64, reason: &str, actor: &str) -> EventBody {
    EventBody::DlqDiscarded(DlqDiscarded {
        dlq_id,
        reason: reason.to_owned(),
        actor: actor.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_lifecycle_allows_exactly_its_table() {
        use DlqStatus::{Discarded, Open, Replayed, Retried};
        use DlqStep::{Discard, Replay, Retry};
        let table = [
            (Open, Replay, Some(Replayed)),
            (Open, Discard, Some(Discarded)),
            (Open, Retry, Some(Retried)),
            (Replayed, Replay, None),
            (Replayed, Discard, None),
            (Replayed, Retry, Some(Replayed)),
            (Discarded, Replay, None),
            (Discarded, Discard, None),
            (Discarded, Retry, Some(Discarded)),
            (Retried, Replay, None),
            (Retried, Discard, None),
            (Retried, Retry, Some(Retried)),
        ];
        for (status, step, next) in table {
            assert_eq!(dlq_next(status, step).ok(), next, "{status} {step:?}");
        }
        assert_eq!(
            dlq_next(Replayed, Discard).unwrap_err().to_string(),
            "is already replayed"
        );
    }
}
