//! ACP, the Automation Control Plane: durable, observable, auditable business-workflow
//! automation. See ARCHITECTURE.md for how the modules fit together.

pub mod wire;

#[cfg(feature = "console")]
pub mod console;

#[cfg(feature = "server")]
pub mod actions;
#[cfg(feature = "server")]
pub mod alerts;
#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod domain;
#[cfg(feature = "server")]
pub mod engine;
#[cfg(feature = "server")]
pub mod incidents;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod outbox;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
