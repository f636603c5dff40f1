//! The channel a command acts on, checked against the registry.

use super::command::{Command, Order};
use super::outcome::CommandError;
use crate::registry::Registry;

/// The call must be live in the requester's account (a whapp never acts on
/// another account's call), and a transfer needs a bridged channel, as
/// Crossbar requires (WIRE.md §6.2).
pub fn channel(registry: &Registry, cmd: &Command) -> Result<(), CommandError> {
    let ch = registry
        .get(&cmd.call_id)
        .filter(|ch| ch.account_id.as_deref() == Some(cmd.account_id.as_str()))
        .ok_or_else(|| CommandError::NotFound {
            call_id: cmd.call_id.clone(),
            account_id: cmd.account_id.clone(),
        })?;
    let transfer = matches!(
        cmd.order,
        Order::Action {
            name: "transfer",
            ..
        }
    );
    if transfer && ch.other_leg.is_none() {
        return Err(CommandError::NotBridged(cmd.call_id.clone()));
    }
    Ok(())
}
