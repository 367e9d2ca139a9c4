//! The power loop: suspend and shutdown bring the AWS-side deadline
//! forward (see [`crate::detect::power`]); a resume is the user's return.

use super::{now, App};
use crate::cloud::CloudControl;
use crate::core::model::activity::{Activity, ActivityKind};
use crate::core::model::history::Trigger;
use crate::core::policy::deadline;
use crate::core::protocol::status::Operation;
use crate::detect::power::PowerEvent;
use crate::manager::now_seconds;
use tokio::sync::mpsc;

impl<C: CloudControl> App<C> {
    /// Follows suspend, shutdown and resume (see [`crate::detect::power`])
    /// until the channel closes.
    pub async fn run_power(&self, mut events: mpsc::UnboundedReceiver<PowerEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                PowerEvent::Leaving { shutdown, ready } => {
                    self.leaving(shutdown).await;
                    let _ = ready.send(());
                }
                PowerEvent::Resumed => self.resumed(),
            }
        }
    }

    /// The machine is about to suspend or shut down: the AWS-side deadline
    /// moves to `power.suspend_grace_minutes` from now, if that is sooner,
    /// and stays there until the machine is back.
    async fn leaving(&self, shutdown: bool) {
        let what = if shutdown { "shutdown" } else { "suspend" };
        let grace = crate::detect::power::suspend_grace(&self.settings().detectors);
        self.lock().deadline.cap = Some(now_seconds() as u64 + grace.as_secs());
        self.keep_deadline().await;
        let (at, armed) = {
            let state = self.lock();
            (state.deadline.at, state.deadline.armed.len())
        };
        match at {
            Some(at) => tracing::info!(
                "{what}: the AWS-side deadline of {armed} resource(s) is in {} s",
                at.saturating_sub(now_seconds() as u64)
            ),
            None => tracing::info!("{what}: no AWS-side deadline is armed"),
        }
    }

    /// The machine is back from suspend: that is the user's return. What
    /// the AWS-side deadline may have put to sleep meanwhile is woken.
    fn resumed(&self) {
        let (came, asleep) = {
            let mut state = self.lock();
            state.deadline.cap = None;
            let came = deadline::may_have_come(state.deadline.at, now_seconds() as u64);
            (came, state.tracker.anything_asleep())
        };
        tracing::info!("resumed from suspend");
        self.activity(Activity {
            kind: ActivityKind::Resumed,
            at: now(),
        });
        // Asleep, the activity wakes everything already.
        if came && !asleep {
            tracing::info!("the AWS-side deadline came while suspended: waking what it slept");
            if let Some(app) = self.me.upgrade() {
                tokio::spawn(async move { app.run(Operation::Waking, Trigger::Resume).await });
            }
        }
    }
}
