//! The product's vocabulary as types: workflow definitions and their validation, retry policy,
//! step failures, run transitions and record writes. No I/O happens here.

pub mod alert;
pub mod clock;
pub mod config;
pub mod dead_letter;
pub mod delivery;
pub mod failure;
pub mod incident;
pub mod link;
pub mod notice;
pub mod policy;
pub mod record;
pub mod redact;
pub mod retry;
pub mod rollup;
pub mod run;
pub mod signature;
pub mod standard_webhooks;
pub mod template;
pub mod validate;
pub mod workflow;

pub use failure::StepFailure;
pub use record::{
    Merge, PreparedWrite, Provenance, RecordChange, RecordEvent, RecordWrite, RecordWriteOutcome,
    Triggered,
};
pub use retry::RetryPolicy;
pub use run::{Held, NewRun, RetryAt, Transition};
pub use validate::{Problem, parse_workflow};
pub use workflow::{ActionDef, NotifyChannel, Step, Trigger, Workflow, WorkflowDef};
