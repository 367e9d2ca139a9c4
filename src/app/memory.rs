//! The memory loop: once startup has settled, and once each sleep or wake
//! has, what the daemon no longer uses is given back ([`memory::release`]).

use super::App;
use crate::cloud::CloudControl;
use crate::memory;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long after startup, or after a sleep or wake, the daemon is taken
/// to be idle again (the follow-ups of a wake, readiness checks and
/// notifications, are mostly over).
const SETTLE: Duration = Duration::from_secs(30);

impl<C: CloudControl> App<C> {
    /// Releases memory [`SETTLE`] after startup and after each finished
    /// sleep or wake, until `shutdown` resolves.
    pub async fn run_memory(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let finished = self.lock().finished;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(SETTLE) => {}
            }
            if self.lock().operation.is_none() {
                let kb = memory::release();
                tracing::debug!("idle: {kb} kB of memory given back");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.state.changed(&finished, |s| s.finished) => {}
            }
        }
    }
}
