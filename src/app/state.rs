//! The app's state, under one lock: the idle tracker, holds, retries, the
//! AWS-side deadline and team mode as last seen. Plain data; the loops that
//! change it are in the sibling files. Every change is signalled, and each
//! loop waits for the part of the state it follows to change
//! ([`Shared::changed`]): nobody has to remember to wake a loop.

use crate::core::config::registry::Entry;
use crate::core::config::settings::Settings;
use crate::core::model::activity::ActivityKind;
use crate::core::model::outcome::Outcome;
use crate::core::model::resource::ResourceId;
use crate::core::policy::deadline;
use crate::core::policy::holds::Holds;
use crate::core::policy::idle::{IdleEvent, IdleTracker};
use crate::core::policy::inhibitors::{self, Inhibitor, InhibitorRow};
use crate::core::policy::prewake::Plan;
use crate::core::policy::readiness::Follow;
use crate::core::policy::retry::Retry;
use crate::core::policy::team::{Phase, Presence, State as TeamState};
use crate::core::protocol::status::{ConfigFile, DetectorRow, Operation};
use crate::store::config::Paths;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};
use tokio::sync::watch;

/// The state under its lock, and a signal raised by every change to it.
pub(super) struct Shared {
    state: Mutex<State>,
    changes: watch::Sender<()>,
}

impl Shared {
    pub(super) fn new(state: State) -> Shared {
        Shared {
            state: Mutex::new(state),
            changes: watch::Sender::new(()),
        }
    }

    /// The state, also after a panic elsewhere poisoned the lock (every
    /// change to it is a single assignment, so it is never half-done). A
    /// change made through the guard is signalled when it is dropped.
    pub(super) fn lock(&self) -> Guard<'_> {
        Guard {
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
            changes: &self.changes,
            changed: false,
        }
    }

    /// A receiver told of every change of the state.
    pub(super) fn subscribe(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// Resolves once `key` of the state is no longer `seen`: a loop's
    /// wake-up condition, derived from the state rather than signalled by
    /// hand.
    pub(super) async fn changed<K: PartialEq>(&self, seen: &K, key: impl Fn(&State) -> K) {
        let mut changes = self.subscribe();
        while key(&self.lock()) == *seen {
            // The sender lives as long as `self`.
            let _ = changes.changed().await;
        }
    }
}

/// The locked state; signals a change (a mutable borrow) when dropped.
pub(super) struct Guard<'a> {
    state: MutexGuard<'a, State>,
    changes: &'a watch::Sender<()>,
    changed: bool,
}

impl Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.changed = true;
        &mut self.state
    }
}

impl Guard<'_> {
    /// The state to change as bookkeeping no loop follows (when the clock
    /// was last looked at): no change is signalled.
    pub(super) fn quietly(&mut self) -> &mut State {
        &mut self.state
    }

    /// Signals a change made [`Self::quietly`] after all.
    pub(super) fn touch(&mut self) {
        self.changed = true;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.changes.send_replace(());
        }
    }
}

/// Everything the app changes, under one lock (never held across an await).
pub(super) struct State {
    /// The settings in use: the last valid settings.json.
    pub(super) settings: Arc<Settings>,
    /// Config files that are invalid now, with their error.
    pub(super) config_errors: BTreeMap<ConfigFile, String>,
    pub(super) tracker: IdleTracker,
    /// The sleep or wake in progress.
    pub(super) operation: Option<Operation>,
    /// How many sleeps and wakes have ended (so a loop that was busy
    /// while one began and ended still sees it).
    pub(super) finished: u64,
    /// The latest activity seen, for STATUS ("what keeps me awake?").
    pub(super) last_activity: Option<(ActivityKind, Instant)>,
    /// The user's last own input (or the start): an idle inhibitor counts
    /// for `inhibitors.max_minutes` after it.
    pub(super) last_input: Instant,
    /// The idle inhibitors other programs hold, as last reported.
    pub(super) inhibitors: Vec<Inhibitor>,
    /// Every activity detector and how it is doing.
    pub(super) detectors: Vec<DetectorRow>,
    /// What keeps resources awake on purpose (`PAUSE` is one of them).
    pub(super) holds: Holds,
    /// The report of the last sleep, until the next wake: why what is up
    /// stayed up, and what is busy (checked again at each state check
    /// while the user stays away).
    pub(super) last_sleep: Vec<Outcome>,
    /// Resources found by their `cloudnap:managed=true` tag at the last
    /// search (each sleep, and at start), not in services.yaml.
    pub(super) tagged: Vec<Entry>,
    /// The sleep or wake that failed for a passing reason and waits to be
    /// tried again.
    pub(super) retry: Option<Retry>,
    /// The AWS-side deadline as last armed.
    pub(super) deadline: Deadline,
    /// Team mode, as this member knows it.
    pub(super) team: Team,
    /// The last wake's resources, followed until usable.
    pub(super) readiness: Option<Follow>,
    /// Waking ahead of the user's usual arrival.
    pub(super) prewake: Prewake,
}

/// The pre-wake as last planned (see [`crate::core::policy::prewake`]).
#[derive(Default)]
pub(super) struct Prewake {
    /// The plan for what is asleep now.
    pub(super) plan: Option<Plan>,
    /// The plan under which resources were woken, until the user comes or
    /// its grace runs out.
    pub(super) started: Option<Plan>,
    /// What it woke.
    pub(super) woken: Vec<ResourceId>,
}

#[cfg(unix)]
pub(super) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    }
}

#[cfg(windows)]
pub(super) fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

impl State {
    /// Lets the idle tracker follow the holds on everything: held, nothing
    /// sleeps by itself (and what is asleep wakes); the last one gone, the
    /// countdown restarts.
    pub(super) fn follow_holds(&mut self, t: Instant) -> Option<IdleEvent> {
        match self.holds.all_held_until(t) {
            Some(until) => self.tracker.pause_until(t, until),
            None => {
                self.tracker.resume(t);
                None
            }
        }
    }
}

impl State {
    /// Lets the idle tracker follow the inhibitors: present until their
    /// limit after the last input, if any is honoured.
    pub(super) fn follow_inhibitors(&mut self, t: Instant) -> Option<IdleEvent> {
        let rules = crate::detect::inhibitors::rules(&self.settings.detectors);
        let until = inhibitors::until(&self.inhibitors, &rules, self.last_input);
        self.tracker.inhibit(t, until)
    }

    /// Every inhibitor, and whether it counts at `t`.
    pub(super) fn inhibitor_rows(&self, t: Instant) -> Vec<InhibitorRow> {
        let rules = crate::detect::inhibitors::rules(&self.settings.detectors);
        inhibitors::rows(&self.inhibitors, &rules, self.last_input, t)
    }
}

/// What the app knows of the team.
#[derive(Default)]
pub(super) struct Team {
    /// This member's id, once resolved.
    pub(super) member: Option<String>,
    /// Why the table cannot be used now.
    pub(super) error: Option<String>,
    /// Every presence item at the last read.
    pub(super) members: Vec<Presence>,
    /// This member's state and since when, as last written.
    pub(super) written: Option<(TeamState, SystemTime)>,
    /// Each shared resource as this member last saw it.
    pub(super) rows: BTreeMap<ResourceId, Row>,
    /// The shared resources with a step under way.
    pub(super) under_way: BTreeSet<ResourceId>,
}

/// A shared resource at this member's last step.
#[derive(Clone)]
pub(super) struct Row {
    pub(super) phase: Phase,
    /// The lock's last writer.
    pub(super) owner: String,
    pub(super) note: Option<String>,
}

/// The AWS-side deadline (see [`crate::core::policy::deadline`]) as last armed.
#[derive(Default)]
pub(super) struct Deadline {
    /// Unix seconds it is armed for, the earliest if several, if it is.
    pub(super) at: Option<u64>,
    /// When each timeout group's resources are armed for (Unix seconds).
    pub(super) groups: BTreeMap<std::time::Duration, u64>,
    /// The resources it was last armed for (registered and not held).
    pub(super) wanted: Vec<ResourceId>,
    /// The schedules set, by resource: profile and schedule name.
    pub(super) armed: BTreeMap<ResourceId, (Option<String>, String)>,
    /// Why it cannot be armed, once said.
    pub(super) off: Option<String>,
    /// Whether the schedules of earlier runs have been looked for.
    pub(super) cleaned: bool,
    /// While the machine is going down (suspend, shutdown): the deadline
    /// comes no later than this (Unix seconds).
    pub(super) cap: Option<u64>,
}

/// `host-user-install` of this install, for the schedule names of the
/// deadline (see [`deadline::member`]).
pub(super) fn member(settings_file: &Path) -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .unwrap_or_default();
    let install = Paths::in_dir(settings_file.parent().unwrap_or(settings_file)).install_id();
    deadline::member(&host_name(), &user, install)
}
