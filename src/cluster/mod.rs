//! Running several instances: warm-up from peers or ecallmgr, registry
//! snapshots, the cluster status request, and the stale-channel reaper.

pub mod reaper;
pub mod seed;
pub mod snapshot;
pub mod status;
pub mod warmup;

/// `callctl` routing keys of our own cluster requests.
pub const SNAPSHOT_ROUTING_KEY: &str = "channels.snapshot";
pub const STATUS_ROUTING_KEY: &str = "channels.status";
