//! Running several instances: warm-up from peers or ecallmgr, registry
//! snapshots, the cluster status request, and the stale-channel reaper.
//! Depends on `app::state`, never the other way round.

pub mod advert;
pub mod reaper;
pub mod seed;
pub mod snapshot;
pub mod status;
pub mod warmup;
