//! The exchanges we publish to and bind on, named once (WIRE.md §1). Their
//! flags are in `amqp-bindings/`, which the worker declares.

/// Call events and Kazoo 4.3/5.0 channel queries (topic).
pub const CALLEVT: &str = "callevt";
/// Replies, routed by the requester's queue name (direct).
pub const TARGETED: &str = "targeted";
/// Our own requests: commands, snapshots, status (direct).
pub const CALLCTL: &str = "callctl";
/// Konami's metaflow messages (topic).
pub const METAFLOW: &str = "metaflow";
/// Kazoo 5.1+'s channel queries. Kazoo core's to declare, type not public:
/// only ever checked passively (`bus::optional`, WIRE-5.md §1).
pub const CHANNELS: &str = "channels";
/// Kazoo's node list: every node's `advertise` (fanout; NODES.md §1).
pub const NODES: &str = "nodes";
