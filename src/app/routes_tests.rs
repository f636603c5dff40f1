//! The limits every delivery passes, through the handler the consumer is
//! given: a panic costs one message, an oversized body is refused unread, a
//! request past its deadline is dropped.

use std::sync::Arc;

use super::*;
use crate::config::Settings;
use crate::kapi::time::gregorian_now_micros;
use crate::kapi::{Outgoing, exchanges::TARGETED};
use crate::stats::Stats;

fn state() -> Arc<State> {
    let mut settings = Settings::defaults();
    settings.amqp.max_body_bytes = 64;
    State::new(settings)
}

fn panics(_: &State, msg: &Incoming) -> Outcome {
    if msg.body.starts_with(b"{\"Msg-ID\":\"boom\"") {
        panic!("a handler bug");
    }
    Outcome::publish(
        vec![Outgoing::new(TARGETED, "q", b"{}".to_vec())],
        Tally::QueryAnswered,
    )
}

const QUERIES: Limits = Limits::new("queries", Deadline::Reply, Tally::RequestRejected);

#[tokio::test]
async fn a_handler_panic_costs_its_one_message() {
    let s = state();
    let handler = sync(&s, QUERIES, panics);
    let out = handler(Incoming::new("rk", br#"{"Msg-ID":"boom"}"#.to_vec())).await;
    assert!(out.is_empty(), "nothing published");
    assert_eq!(Stats::get(&s.stats.handler_panics), 1);
    // The same handler serves the next delivery.
    let out = handler(Incoming::new("rk", br#"{"Msg-ID":"fine"}"#.to_vec())).await;
    assert_eq!(out.len(), 1);
    assert_eq!(Stats::get(&s.stats.requests_answered), 1);
}

#[tokio::test]
async fn a_body_over_the_bound_is_refused_unread() {
    let s = state();
    let handler = sync(&s, QUERIES, panics);
    let body = format!(r#"{{"Msg-ID":"boom","pad":"{}"}}"#, "x".repeat(64));
    assert!(
        handler(Incoming::new("rk", body.into_bytes()))
            .await
            .is_empty()
    );
    assert_eq!(Stats::get(&s.stats.requests_rejected), 1);
    assert_eq!(
        Stats::get(&s.stats.handler_panics),
        0,
        "the handler never ran"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_dropped_and_an_event_never_is() {
    let s = state();
    let mut late = Incoming::new("rk", br#"{"Msg-ID":"late"}"#.to_vec());
    late.sent_at = Some(gregorian_now_micros() - 3_000_000);
    assert!(sync(&s, QUERIES, panics)(late.clone()).await.is_empty());
    assert_eq!(Stats::get(&s.stats.requests_expired), 1);
    let events = Limits::new("events", Deadline::None, Tally::EventRejected);
    assert_eq!(sync(&s, events, panics)(late).await.len(), 1);
}
