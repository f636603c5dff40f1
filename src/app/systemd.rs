//! systemd's readiness protocol (`sd_notify(3)`), for the packaged unit's
//! `Type=notify`: one datagram per notice to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). The
//! worker says `READY=1` once its registry is warm and the shared queues are
//! consumed, so `systemctl start` returns when it answers, and `STOPPING=1`
//! when a signal starts its graceful stop. Outside systemd (no
//! `$NOTIFY_SOCKET`) every notice is a no-op.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;

use tracing::{debug, warn};

use super::state::State;

const SOCKET_VAR: &str = "NOTIFY_SOCKET";

/// The worker serves: registry warm, every shared queue consumed.
pub fn serving(state: &State, broker: &str) {
    let status = format!(
        "serving: {} channels, broker {broker}",
        state.registry().len()
    );
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// A signal arrived: in-flight requests are being finished.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping: finishing in-flight requests");
}

/// Sends `message` to systemd when it listens; a failure is logged, never
/// fatal (the service then times out its start, which the log explains).
fn notify(message: &str) {
    let Some(socket) = std::env::var_os(SOCKET_VAR) else {
        return;
    };
    match send(&socket, message) {
        Ok(()) => debug!(notice = %message.replace('\n', " "), "told systemd"),
        Err(error) => {
            warn!(socket = %socket.to_string_lossy(), %error, "cannot notify systemd")
        }
    }
}

/// One datagram to `socket` (a path, or `@name` for an abstract socket).
pub fn send(socket: &OsStr, message: &str) -> io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sender.send_to_addr(message.as_bytes(), &addr)?
        }
        None => sender.send_to(message.as_bytes(), socket)?,
    };
    if sent != message.len() {
        return Err(io::Error::other("short datagram"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_notice_reaches_a_socket_path() {
        let dir = std::env::temp_dir().join(format!("kc-notify-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_notice_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("kc-notify-{}", uuid::Uuid::new_v4());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(received(&listener), "STOPPING=1");
    }

    #[test]
    fn no_listener_is_an_error_not_a_panic() {
        let missing = std::env::temp_dir().join(format!("kc-none-{}", uuid::Uuid::new_v4()));
        assert!(send(missing.as_os_str(), "READY=1").is_err());
    }
}
