//! Flow control from the broker to the supervisor, pure: what the actor has
//! received and not yet handed over, what the supervisor holds, and the
//! acknowledgements owed for it.
//!
//! A QoS 1 command is acknowledged only once the supervisor has handled it
//! (and queued its reply). The broker sends a client only so many
//! unacknowledged messages (MQTT 5 Receive Maximum; mosquitto's
//! `max_inflight_messages` under 3.1.1), so a box that stops handing
//! commands over stops the broker sending more: the burst waits at the
//! broker, not in the box's memory. Commands are handed over only while the
//! outgoing side has room, so replies and events are never dropped for lack
//! of it.

use super::Inbound;
use std::collections::VecDeque;

/// Commands the supervisor may hold at once (queued to it or being handled).
pub const WITH_SUPERVISOR: usize = 4;
/// Outgoing messages waiting for room in the MQTT client beyond which no
/// further command is handed over (each command makes a handful).
pub const OUTGOING_HIGH_WATER: usize = 32;
/// QoS 0 messages are not acknowledged, so nothing holds them back at the
/// broker: beyond this many waiting, new ones are dropped (QoS 0 promises
/// at most once). QoS 1 and 2 ones are always kept; the broker's window
/// bounds them.
pub const QOS0_WAITING: usize = 256;

pub struct Inbox<A> {
    /// Received, not yet handed over, in order; each message with the
    /// acknowledgement it will owe.
    waiting: VecDeque<(Inbound, Option<A>)>,
    /// One entry per message the supervisor holds, oldest first.
    owed: VecDeque<Option<A>>,
}

impl<A> Default for Inbox<A> {
    fn default() -> Self {
        Inbox { waiting: VecDeque::new(), owed: VecDeque::new() }
    }
}

impl<A> Inbox<A> {
    /// A received message; false when it was dropped (QoS 0, too many waiting).
    pub fn message(&mut self, m: super::Incoming, ack: Option<A>) -> bool {
        if ack.is_none() && self.waiting.len() >= QOS0_WAITING {
            return false;
        }
        self.waiting.push_back((Inbound::Message(m), ack));
        true
    }

    /// Connection news (`Up`, `Down`): in order with the messages, never
    /// held back nor dropped.
    pub fn news(&mut self, i: Inbound) {
        self.waiting.push_back((i, None));
    }

    /// Whether the next item may be handed over now, given how many outgoing
    /// messages wait for room in the client.
    pub fn ready(&self, outgoing_waiting: usize) -> bool {
        match self.waiting.front() {
            None => false,
            Some((Inbound::Message(_), _)) => self.owed.len() < WITH_SUPERVISOR && outgoing_waiting < OUTGOING_HIGH_WATER,
            Some(_) => true,
        }
    }

    /// The next item, for the supervisor (call only when [`Self::ready`]).
    pub fn take(&mut self) -> Option<Inbound> {
        let (item, ack) = self.waiting.pop_front()?;
        if matches!(item, Inbound::Message(_)) {
            self.owed.push_back(ack);
        }
        Some(item)
    }

    /// The supervisor handled its oldest message: the acknowledgement it
    /// owes (none for QoS 0).
    pub fn handled(&mut self) -> Option<A> {
        self.owed.pop_front().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Incoming;
    use bytes::Bytes;

    fn msg(n: u32) -> Incoming {
        Incoming { topic: format!("t/{n}"), payload: Bytes::new(), response_topic: None, correlation: None, retain: false }
    }

    fn topic(i: &Inbound) -> String {
        match i {
            Inbound::Message(m) => m.topic.clone(),
            Inbound::Up { .. } => "up".into(),
            Inbound::Down { .. } => "down".into(),
        }
    }

    #[test]
    fn commands_wait_while_the_supervisor_holds_its_share_and_acks_follow_in_order() {
        let mut inbox = Inbox::default();
        for n in 0..10 {
            assert!(inbox.message(msg(n), Some(n)));
        }
        let mut handed = Vec::new();
        while inbox.ready(0) {
            handed.push(topic(&inbox.take().unwrap()));
        }
        assert_eq!(handed.len(), WITH_SUPERVISOR, "only the supervisor's share is handed over");
        // Each handled message frees a place and yields its own ack, oldest first.
        assert_eq!(inbox.handled(), Some(0));
        assert!(inbox.ready(0));
        handed.push(topic(&inbox.take().unwrap()));
        while inbox.handled().is_some() {}
        while inbox.ready(0) {
            handed.push(topic(&inbox.take().unwrap()));
            assert!(inbox.handled().is_some());
        }
        let want: Vec<String> = (0..10).map(|n| format!("t/{n}")).collect();
        assert_eq!(handed, want, "in order, none lost");
    }

    #[test]
    fn a_full_outgoing_side_holds_commands_back_but_not_connection_news() {
        let mut inbox = Inbox::default();
        inbox.news(Inbound::Down { reason: "x".into() });
        inbox.message(msg(1), Some(1));
        assert!(inbox.ready(OUTGOING_HIGH_WATER), "news pass even when the outgoing side is full");
        assert_eq!(topic(&inbox.take().unwrap()), "down");
        assert!(!inbox.ready(OUTGOING_HIGH_WATER), "a command waits for room for its reply");
        assert!(inbox.ready(OUTGOING_HIGH_WATER - 1));
        assert_eq!(topic(&inbox.take().unwrap()), "t/1");
        assert!(!inbox.ready(0), "nothing left");
        assert_eq!(inbox.handled(), Some(1));
        assert_eq!(inbox.handled(), None, "nothing more owed");
    }

    #[test]
    fn only_unacknowledged_qos0_messages_are_ever_dropped() {
        let mut inbox: Inbox<u32> = Inbox::default();
        for n in 0..QOS0_WAITING as u32 {
            assert!(inbox.message(msg(n), None));
        }
        assert!(!inbox.message(msg(9999), None), "QoS 0 beyond the cap is dropped");
        assert!(inbox.message(msg(10_000), Some(1)), "QoS 1 is always kept (the broker's window bounds it)");
        // A QoS 0 message handed over and handled owes nothing.
        assert!(inbox.ready(0));
        inbox.take();
        assert_eq!(inbox.handled(), None);
    }
}
