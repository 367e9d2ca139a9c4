//! The retry loop: failed sleeps and wakes tried again, at once on what may have fixed them.

use super::*;

impl<C: CloudControl> App<C> {
    /// What a wake whose state file could not be read left undone: every
    /// entry, for the retry (none for a sleep, which is not retried).
    pub(super) fn unread(&self, op: Operation) -> Vec<Outcome> {
        if op == Operation::Sleeping {
            return Vec::new();
        }
        (self.entries().into_iter())
            .map(|e| Outcome {
                resource: e.id,
                action: Action::Failed,
                before: None,
                saved: None,
                error: None,
                retrying: Some(Cause::StateDir),
            })
            .collect()
    }

    /// After a try of `op`: schedules the next one if some resources failed
    /// for a passing reason (see [`Retry`]), says so at the first failure,
    /// and replaces any earlier retry. Returns whether a retry is pending.
    pub(super) fn follow_up(&self, op: Operation, trigger: Trigger, outcomes: &[Outcome]) -> bool {
        let t = now();
        let pending: Vec<Pending> = (outcomes.iter())
            .filter_map(|o| Some((o, o.retrying.filter(|c| tried_again(op, *c))?)))
            .map(|(o, cause)| Pending {
                profile: self.profile_of(&o.resource),
                resource: o.resource.clone(),
                cause,
            })
            .collect();
        let mut state = self.lock();
        let previous = state.retry.take();
        if pending.is_empty() {
            if let Some(p) = previous.filter(|p| p.operation == op) {
                tracing::info!("{} after {} failed tries", op.done(), p.attempts);
            }
            return false;
        }
        let retry = match Retry::after_failure(previous.as_ref(), op, trigger, pending, t) {
            Ok(retry) => retry,
            Err(last) => {
                tracing::error!(
                    "{}: given up after {} tries over {} min",
                    last.text(),
                    last.attempts,
                    t.saturating_duration_since(last.since).as_secs() / 60
                );
                return false;
            }
        };
        tracing::warn!(
            "{}: tried again in {} s",
            retry.text(),
            retry.at.saturating_duration_since(t).as_secs_f64()
        );
        // Said once, and again when the cause changes.
        if retry.attempts == 1 || previous.is_some_and(|p| p.cause != retry.cause) {
            if let Some(advice) = retry.advice() {
                tracing::error!("{advice}");
            }
            self.emit(Event::Retrying {
                operation: op,
                cause: retry.cause,
                resources: (retry.pending.iter())
                    .map(|p| p.resource.short_name().to_string())
                    .collect(),
                advice: retry.advice(),
            });
        }
        state.retry = Some(retry);
        drop(state);
        true
    }

    /// Tries again the sleep or wake that failed, when its pause is over;
    /// while the network is a cause, looks every [`PROBE_EVERY`] whether
    /// AWS answers a TCP connection, and while a wake's records wait to be
    /// written, whether they can be (writing them), and then tries at once. A
    /// retry the user's state no longer wants (a wake while the user is
    /// away again, a sleep after the return) is dropped: the sleep or wake
    /// that followed took its place. Until `shutdown` resolves.
    pub async fn run_retry(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let t = now();
            let retry = self.lock().retry.clone();
            let due = (retry.as_ref()).map(|r| r.probe_at(t, PROBE_EVERY).unwrap_or(r.at));
            // Records a wake could not write are written once they can be.
            let unsaved = self.manager.unsaved();
            let due = match due {
                Some(at) if unsaved => Some(at.min(t + PROBE_EVERY)),
                None if unsaved => Some(t + PROBE_EVERY),
                due => due,
            };
            tokio::select! {
                _ = &mut shutdown => return,
                // A new failure, or the wake hurried by activity.
                _ = self.state.changed(&retry, |s| s.retry.clone()) => continue,
                _ = super::until(due) => {}
            }
            let written = unsaved && self.manager.flush().is_ok();
            if written {
                tracing::info!("the state file can be written again: records written");
            }
            let Some(retry) = self.lock().retry.clone() else {
                continue;
            };
            let state_fixed = written && retry.pending.iter().any(|p| p.cause.is_state());
            if now() < retry.at && !state_fixed && !self.network_back(&retry).await {
                continue;
            }
            let away = self.lock().tracker.anything_asleep();
            if !retry.wanted(away) {
                let mut state = self.lock();
                if state.retry.as_ref() == Some(&retry) {
                    state.retry = None;
                }
                continue;
            }
            let _ = self.run(retry.operation, retry.trigger).await;
        }
    }

    /// Whether AWS answers a TCP connection again in a region of `retry`,
    /// when the network is one of its causes.
    pub(super) async fn network_back(&self, retry: &Retry) -> bool {
        if !retry.pending.iter().any(|p| p.cause.is_network()) {
            return false;
        }
        let mut regions: Vec<&str> = retry.pending.iter().map(|p| p.resource.region()).collect();
        regions.sort_unstable();
        regions.dedup();
        let cloud = self.manager.cloud();
        let answers = futures::future::join_all(regions.iter().map(|r| cloud.reachable(r))).await;
        let back = answers.contains(&true);
        if back {
            tracing::info!("AWS answers again: {} at once", retry.text());
        }
        back
    }

    /// Something may have fixed what a pending wake waits for (the user's
    /// activity, an AWS file edited): it is tried again at once (see
    /// [`Retry::hurry`]).
    pub(super) fn hurry_wake(&self, why: &str) {
        let t = now();
        let moved = {
            let mut state = self.lock();
            match state.retry.as_mut() {
                Some(r) if r.operation == Operation::Waking => r.hurry(t),
                _ => false,
            }
        };
        if moved {
            tracing::info!("{why}: the wake is tried again at once");
        }
    }

    /// The AWS config or credentials files, or the SSO token cache,
    /// changed: new SDK clients read them, and a pending wake is tried
    /// again at once.
    pub fn aws_files_changed(&self, path: &Path) {
        tracing::info!("{} changed: AWS credentials are read again", path.display());
        self.manager.cloud().reconfigure(&self.settings().aws);
        self.hurry_wake("AWS files changed");
    }

    /// The profile the calls about `id` use, as the user knows it: its
    /// entry's, its record's, else the settings' default (`None`: the
    /// default credentials).
    pub(super) fn profile_of(&self, id: &ResourceId) -> Option<String> {
        let entry = self.entry_of(id).and_then(|e| e.profile);
        let record = || {
            self.manager
                .asleep()
                .get(id)
                .and_then(|r| r.profile.clone())
        };
        entry
            .or_else(record)
            .or_else(|| self.settings().aws.profile.clone())
    }
}
