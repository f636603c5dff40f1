//! Where the worker's bus connection stands: the supervisor sets it, the
//! liveness file and the worker's handle read it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    Connecting,
    Connected,
    Disconnected,
    Stopped,
}
