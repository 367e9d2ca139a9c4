//! Re-asserting "still active" for event-driven idle sources.
//!
//! A compositor's idle notification (or GNOME's idle watch) only reports the
//! transitions idle → active and active → idle. Someone typing without a
//! pause as long as the notification's timeout produces one `resumed` and
//! then nothing, while the orchestrator's countdown runs from the last
//! activity it was told about. So while the seat is known to be active (after
//! a `resumed`, until the next `idled`), this re-emits activity every
//! `period`. It never asks the OS anything: it only repeats the state the
//! source last reported, and a thread parked on a condition variable costs
//! nothing while the seat is idle.
//!
//! The last re-assertion can come up to `period` after the last real input
//! (the compositor says `idled` only `timeout` after it), so with
//! `period == timeout` resources sleep at most `timeout` late.

use super::source::Sink;
use crate::core::model::activity::ActivityKind;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    active: bool,
    /// Bumped on each `resumed`, so a wait restarts from the latest one.
    generation: u64,
    stop: bool,
}

/// Emits `kind` every `period` between [`Heartbeat::resumed`] and
/// [`Heartbeat::idled`]; stops when dropped.
pub(crate) struct Heartbeat {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Heartbeat {
    /// Starts the re-asserting thread, initially idle.
    pub(crate) fn start(sink: Sink, kind: ActivityKind, period: Duration) -> Heartbeat {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("detect-{}-heartbeat", kind.name()))
            .spawn(move || beat(&theirs, &sink, kind, period));
        if let Err(e) = spawned {
            tracing::warn!("{} detector: cannot start a thread: {e}", kind.name());
        }
        Heartbeat { shared }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let (lock, cvar) = &*self.shared;
        f(&mut lock.lock().expect("heartbeat"));
        cvar.notify_all();
    }

    /// Input was seen (the caller emits that activity itself): re-assert
    /// every period from now on.
    pub(crate) fn resumed(&self) {
        self.update(|s| {
            s.active = true;
            s.generation += 1;
        });
    }

    /// The seat went idle: stop re-asserting.
    pub(crate) fn idled(&self) {
        self.update(|s| s.active = false);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.update(|s| s.stop = true);
    }
}

fn beat(shared: &(Mutex<State>, Condvar), sink: &Sink, kind: ActivityKind, period: Duration) {
    let (lock, cvar) = shared;
    let mut state = lock.lock().expect("heartbeat");
    loop {
        if state.stop || sink.is_closed() {
            return;
        }
        if !state.active {
            state = cvar.wait(state).expect("heartbeat");
            continue;
        }
        let generation = state.generation;
        let (next, timeout) = cvar.wait_timeout(state, period).expect("heartbeat");
        state = next;
        if timeout.timed_out() && state.active && !state.stop && state.generation == generation {
            sink.emit(kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_asserts_only_while_active() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let period = Duration::from_millis(100);
        let hb = Heartbeat::start(Sink::new(tx), ActivityKind::WaylandIdle, period);
        std::thread::sleep(period * 3);
        assert!(rx.try_recv().is_err(), "idle at first: nothing");

        hb.resumed();
        std::thread::sleep(period * 5 + period / 2);
        let mut n = 0;
        while let Ok(a) = rx.try_recv() {
            assert_eq!(a.kind, ActivityKind::WaylandIdle);
            n += 1;
        }
        assert!((2..=5).contains(&n), "about one per period, got {n}");

        hb.idled();
        std::thread::sleep(period * 3);
        assert!(rx.try_recv().is_err(), "idle again: nothing");
    }
}
