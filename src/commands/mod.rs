//! Channel commands (DESIGN.md, "Channel command"): a `channels`/`command_req`
//! is validated, checked against the registry, published to Konami as a kapi
//! `metaflow` message, and answered with what really happened. Plain Rust: the
//! publisher is the [`Publish`] capability, so no lapin in here.
//!
//! `command` parses and validates (its `Data` checked by `data`), `check` looks
//! at the channel, `konami` builds the metaflow message, `outcome` is the one
//! place an error becomes a reply. The command-line client is in `cli/`.

mod check;
mod command;
mod data;
mod konami;
mod outcome;

use serde_json::Value;
use tracing::{info, warn};

pub use command::{ACTIONS, Addressing, Command, METAFLOW, Order};
pub use outcome::{CommandError, reply_body};

use crate::app::state::{Outcome, State};
use crate::kapi::{Identity, Incoming, Outgoing, Publish, PublishOutcome};
use crate::registry::Registry;
use crate::stats::Tally;

/// The commands queue's handler: carries out one request and returns its
/// reply, if it can be addressed. The metaflow message is confirmed (or
/// refused) before the reply is built; the reply is published and only then
/// the request acked.
pub async fn handle<P: Publish>(state: &State, publisher: &P, msg: &Incoming) -> Outcome {
    match respond(&state.registry, &state.identity, publisher, &msg.body).await {
        Some(reply) => Outcome::publish(vec![reply], Tally::CommandAnswered),
        None => Outcome::default(),
    }
}

/// [`handle`] over a registry alone, for tests and benches.
pub async fn respond<P: Publish>(
    registry: &std::sync::RwLock<Registry>,
    identity: &Identity,
    publisher: &P,
    body: &[u8],
) -> Option<Outgoing> {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(error) => {
            warn!(%error, bytes = body.len(), "command request is not JSON; dropped, no reply address");
            return None;
        }
    };
    let env = Addressing::read(&req);
    let outcome = carry_out(registry, identity, publisher, &req).await;
    log(&env, &req, &outcome);
    // Without both there is nowhere to answer, or nothing to correlate it by.
    let (Some(to), Some(msg_id)) = (&env.envelope.reply_to, &env.envelope.msg_id) else {
        return None;
    };
    let body = reply_body(identity, msg_id, env.call_id.as_deref(), &outcome);
    Some(Outgoing::reply_json(to, &body))
}

/// The checks in the contract's order; the first that fails is the answer.
async fn carry_out<P: Publish>(
    registry: &std::sync::RwLock<Registry>,
    identity: &Identity,
    publisher: &P,
    req: &Value,
) -> Result<(), CommandError> {
    let cmd = command::parse(req).map_err(CommandError::Invalid)?;
    check::channel(&registry.read().unwrap_or_else(|p| p.into_inner()), &cmd)?;
    match publisher.publish(konami::message(identity, &cmd)).await? {
        PublishOutcome::Confirmed => Ok(()),
        PublishOutcome::Returned => Err(CommandError::NotRouted(cmd.call_id)),
        PublishOutcome::Nacked => Err(CommandError::Nacked),
        PublishOutcome::Refused => Err(CommandError::Refused),
    }
}

fn log(env: &Addressing, req: &Value, outcome: &Result<(), CommandError>) {
    let call_id = env.call_id.as_deref().unwrap_or_default();
    let msg_id = env.envelope.msg_id.as_deref().unwrap_or_default();
    let account_id = env.account_id.as_deref().unwrap_or_default();
    let action = req
        .get("Action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let answered = env.envelope.reply_to.is_some() && env.envelope.msg_id.is_some();
    match outcome {
        Ok(()) => info!(
            call_id,
            msg_id, account_id, action, answered, "command accepted"
        ),
        Err(e) if e.code() < 500 => {
            info!(call_id, msg_id, account_id, action, answered, code = e.code(), error = %e, "command refused")
        }
        Err(e) => {
            warn!(call_id, msg_id, account_id, action, answered, code = e.code(), error = %e, "command not carried out")
        }
    }
}

#[cfg(test)]
mod command_tests;
