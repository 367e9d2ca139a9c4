//! The idle timer loop: ticks the idle tracker at its deadlines, and again
//! whenever the tracker changed (activity, holds, settings).

use super::{now, App};
use crate::cloud::CloudControl;
use crate::core::model::history::Trigger;
use std::future::Future;
use std::sync::Arc;

impl<C: CloudControl> App<C> {
    /// Ticks the idle tracker at its deadlines until `shutdown` resolves.
    pub async fn run_timer(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let tracker = self.lock().tracker.clone();
            let deadline = tracker.next_deadline(now());
            tokio::select! {
                _ = &mut shutdown => return,
                // Activity, holds, settings: the deadline may have moved.
                _ = self.state.changed(&tracker, |s| s.tracker.clone()) => continue,
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let event = self.lock().tracker.tick(now());
            if let Some(event) = event {
                self.react(event, Trigger::Idle);
            }
        }
    }
}
