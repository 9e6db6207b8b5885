//! The scheduling framework: extension-point traits, plugin statuses, node and pod
//! information, and the runtime that runs a profile's plugins.

pub mod interface;
pub mod node_info;
pub mod runtime;
pub mod snapshot;
pub mod status;

pub use interface::*;
pub use node_info::{NodeInfo, PodInfo, Resource};
pub use runtime::{ExtensionPoint, Filters, Framework, Profiles, ScoreTable};
pub use snapshot::Snapshot;
pub use status::{Code, Status};
