//! rkube's scheduler: upstream kube-scheduler's framework (extension points as traits),
//! its in-tree plugins with their default weights, the scheduling queue, the node-info
//! cache with assumed pods, and the scheduling and binding cycles. It reads and writes
//! the cluster only through the API (kube-rs).
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub(crate) mod events;
pub mod explain;
pub mod framework;
pub mod leader_election;
pub mod listers;
pub mod plugins;
pub use rkube_api::quantity;
pub mod queue;
pub mod schedule_one;
pub mod scheduler;

pub use scheduler::{run, SchedulerOptions};
