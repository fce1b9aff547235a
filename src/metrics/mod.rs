//! What ACP measures about itself: the product's success metrics over a window
//! ([`summary`]) and the Prometheus exposition of its counters, histograms and gauges.

pub mod exposition;
pub mod summary;

pub use exposition::Metrics;
