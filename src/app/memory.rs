//! The memory loop: once startup has settled, and once each sleep or wake
//! has, what the daemon no longer uses is given back ([`memory::release`]);
//! in between, what the idle loops fault in again (the kernel maps code 64 kB
//! around each page touched) is given back once it has grown by [`CREEP`].

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

/// How often the resident set is looked at while idle (one read of
/// `/proc/self/statm`).
const CREEP_CHECK: Duration = Duration::from_secs(20);

/// How much the resident set may grow over what the last release left
/// before it is given back again, in kB.
const CREEP: u64 = 1024;

impl<C: CloudControl> App<C> {
    /// Releases memory [`SETTLE`] after startup and after each finished
    /// sleep or wake, and whenever it has crept up by [`CREEP`] since,
    /// until `shutdown` resolves.
    pub async fn run_memory(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let finished = self.lock().finished;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(SETTLE) => {}
            }
            let mut left = self.release("idle");
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = self.state.changed(&finished, |s| s.finished) => break,
                    _ = tokio::time::sleep(CREEP_CHECK) => {}
                }
                if memory::resident_kb() > left + CREEP {
                    left = self.release("crept up");
                }
            }
        }
    }

    /// Gives memory back unless a sleep or wake runs; the resident set
    /// afterwards, in kB.
    fn release(&self, why: &str) -> u64 {
        if self.lock().operation.is_none() {
            let kb = memory::release();
            tracing::debug!("{why}: {kb} kB of memory given back");
        }
        memory::resident_kb()
    }
}
