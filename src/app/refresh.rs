//! The refresh loop: what is asleep checked against AWS, busy resources checked again.

use super::*;

impl<C: CloudControl> App<C> {
    /// Every `service_state_check_interval`, checks what is held asleep
    /// against AWS (see [`Manager::refresh`]; the user is away while the
    /// tracker is asleep) until `shutdown` resolves.
    pub async fn run_refresh(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let every = self.settings().aws.service_state_check_interval;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
            let away = self.lock().tracker.anything_asleep();
            match self.manager.refresh(away).await {
                Ok(dropped) if !dropped.is_empty() => self.emit(Event::Refreshed(dropped)),
                Ok(_) => {}
                Err(e) => tracing::warn!("refreshing the state: {e}"),
            }
            self.recheck_left_up().await;
        }
    }

    /// While the user stays away, puts to sleep what the last sleep left
    /// running because it was at work or held, if it is not any more (a
    /// hold that ended, released or not renewed); what is still busy stays
    /// on the list for the next check.
    pub(super) async fn recheck_left_up(&self) {
        if !self.lock().tracker.anything_asleep() {
            return;
        }
        let registered = self.entries();
        let entries: Vec<Entry> = {
            let (t, state) = (now(), self.lock());
            if !state.tracker.anything_asleep() {
                return;
            }
            let left_up = |id: &ResourceId| {
                (state.last_sleep.iter())
                    .any(|o| &o.resource == id && matches!(o.action, Action::Busy | Action::Held))
            };
            registered
                .into_iter()
                .filter(|e| left_up(&e.id))
                .filter(|e| state.holds.covering(t, &e.id).is_empty())
                .collect()
        };
        // Only what the idle timer has put to sleep (its timeout passed).
        let entries = self.asleep_by_timeout(entries, None);
        if entries.is_empty() {
            return;
        }
        // In reverse start order: what a resource still busy starts after
        // stays up with it.
        let outcomes = match self.sleep_ordered(entries, Trigger::Idle).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!("checking busy resources again: {e}");
                return;
            }
        };
        {
            let mut state = self.lock();
            // The user came back meanwhile: the wake deals with the rest.
            if state.tracker.anything_asleep() {
                for new in &outcomes {
                    if let Some(old) = state
                        .last_sleep
                        .iter_mut()
                        .find(|o| o.resource == new.resource)
                    {
                        *old = new.clone();
                    }
                }
            }
        }
        if outcomes.iter().any(|o| o.action == Action::Stopped) {
            tracing::info!(
                "no longer busy or held, asleep:\n{}",
                format_outcomes(&outcomes)
            );
            self.emit(Event::Asleep(outcomes));
        }
    }
}
