//! Event fan-out to subscribers: a broadcast channel per registry, a stream per subscriber.
//!
//! The registry never waits for a subscriber: each subscriber has a buffer of
//! [`EVENT_BUFFER`](mcpvisor_model::defaults::EVENT_BUFFER) events, and one that falls behind
//! loses the oldest and is told how many with [`Event::Lagged`].

use mcpvisor_model::Event;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// One subscriber's view of the registry's events, in the order they happened.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Event>,
}

impl EventStream {
    /// The next event; [`Event::Lagged`] when this subscriber fell behind and lost some.
    /// `None` once the registry is gone.
    pub async fn next(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(RecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(RecvError::Closed) => None,
        }
    }

    /// The next event if one is already waiting, without waiting; `None` when none is (or the
    /// registry is gone).
    pub fn try_next(&mut self) -> Option<Event> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            Err(TryRecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

impl From<broadcast::Receiver<Event>> for EventStream {
    fn from(rx: broadcast::Receiver<Event>) -> Self {
        EventStream { rx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_is_told_how_many_events_it_lost() {
        let (tx, rx) = broadcast::channel(4);
        let mut s = EventStream::from(rx);
        for i in 0..10 {
            tx.send(Event::Lagged { missed: i }).unwrap();
        }
        assert_eq!(s.next().await, Some(Event::Lagged { missed: 6 }));
        assert_eq!(
            s.next().await,
            Some(Event::Lagged { missed: 6 }),
            "the oldest kept"
        );
        assert_eq!(s.try_next(), Some(Event::Lagged { missed: 7 }));
        drop(tx);
        assert_eq!(s.next().await, Some(Event::Lagged { missed: 8 }));
        assert_eq!(s.next().await, Some(Event::Lagged { missed: 9 }));
        assert_eq!(s.next().await, None);
    }
}
