//! Team mode in the orchestrator: this member's presence item, written on
//! each idle transition and renewed every heartbeat, and the steps of
//! [`crate::core::team`] for each shared resource, carried out through the
//! manager's sleep and wake of that one resource (see docs/team.md).

use super::{host_name, now, App};
use crate::cloud::{CloudControl, CloudError, TeamTable};
use crate::core::busy::Check;
use crate::core::history::Trigger;
use crate::core::holds::Scope;
use crate::core::idle::IdleState;
use crate::core::registry::Entry;
use crate::core::report::{Action, Outcome};
use crate::core::resource::ResourceId;
use crate::core::settings::TeamSettings;
use crate::core::status::{Event, TeamRow, TeamStatus};
use crate::core::team::{
    confirm_sleep, default_member, display_name, presence_line, step, Confirm, Lock, Phase,
    Presence, State, Step, Written,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// What the app knows of the team.
#[derive(Default)]
pub(super) struct Team {
    /// This member's id, once resolved.
    member: Option<String>,
    /// Why the table cannot be used now.
    error: Option<String>,
    /// Every presence item at the last read.
    members: Vec<Presence>,
    /// This member's state and since when, as last written.
    written: Option<(State, SystemTime)>,
    /// Each shared resource as this member last saw it.
    rows: BTreeMap<ResourceId, Row>,
    /// The shared resources with a step under way.
    under_way: BTreeSet<ResourceId>,
}

/// A shared resource at this member's last step.
#[derive(Clone)]
struct Row {
    phase: Phase,
    /// The lock's last writer.
    owner: String,
    note: Option<String>,
}

/// The wall-clock time of a table time: "14:05".
fn clock(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%H:%M")
        .to_string()
}

impl<C: CloudControl> App<C> {
    /// Team mode, while `team` is set in settings.json: writes this
    /// member's presence and steps for each shared resource on each idle
    /// transition (and hold change) and every `team.heartbeat_seconds`,
    /// through `table`, until `shutdown` resolves.
    pub async fn run_team(
        self: Arc<Self>,
        table: Arc<dyn TeamTable>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let _ = self.team_table.set(table.clone());
        loop {
            let heartbeat = self.settings().team.as_ref().map(|t| t.heartbeat);
            if let Some(team) = self.settings().team.clone() {
                self.team_round(&table, &team).await;
            }
            let wait = async {
                match heartbeat {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.team_changed.notified() => {}
                _ = wait => {}
            }
        }
    }

    /// This member's id: `team.member`, else the STS caller ARN `@` the
    /// host name (asked once).
    async fn team_member(&self, team: &TeamSettings) -> Result<String, CloudError> {
        if let Some(m) = &team.member {
            return Ok(m.clone());
        }
        if let Some(m) = self.lock().team.member.clone() {
            return Ok(m);
        }
        let who = self.manager.cloud().whoami(&team.region, None).await?;
        Ok(default_member(&who.arn, &host_name()))
    }

    /// The table could not be used: said once, shown in STATUS; nothing
    /// shared is slept meanwhile (no step runs without a fresh read).
    fn team_failed(&self, e: &CloudError) {
        let mut state = self.lock();
        if state.team.error.is_none() {
            tracing::warn!(
                "team table: {e}; shared resources are not put to sleep until it answers again"
            );
        }
        state.team.error = Some(e.to_string());
    }

    /// One heartbeat: presence written, presence read, a step spawned for
    /// each shared resource that has none under way.
    async fn team_round(&self, table: &Arc<dyn TeamTable>, team: &TeamSettings) {
        let me = match self.team_member(team).await {
            Ok(me) => me,
            Err(e) => return self.team_failed(&e),
        };
        let (written_state, holds) = {
            let t = now();
            let mut app = self.lock();
            app.team.member = Some(me.clone());
            let state = state_of(app.tracker.state(t));
            let holds: Vec<Scope> = app.holds.active(t).into_iter().map(|h| h.scope).collect();
            (state, holds)
        };
        let written = self.lock().team.written;
        let since = match written {
            Some((s, since)) if s == written_state => since,
            _ => table.now(),
        };
        let read = async {
            table
                .put_presence(&me, written_state, since, &holds, team.lease)
                .await?;
            table.presence().await
        };
        let members = match read.await {
            Ok(members) => members,
            Err(e) => return self.team_failed(&e),
        };
        let (_, shared) = self.split_shared(self.entries());
        let Some(app) = self.me.upgrade() else {
            return;
        };
        {
            let mut state = self.lock();
            if let Some(was) = state.team.error.take() {
                tracing::info!("team table answers again (it failed: {was})");
            }
            state.team.written = Some((written_state, since));
            state.team.members = members.clone();
            state
                .team
                .rows
                .retain(|id, _| shared.iter().any(|e| &e.id == id));
        }
        for entry in shared {
            if !self.lock().team.under_way.insert(entry.id.clone()) {
                continue;
            }
            let (app, table, me, members) =
                (app.clone(), table.clone(), me.clone(), members.clone());
            tokio::spawn(async move {
                let id = entry.id.clone();
                if let Err(e) = app.team_step(&*table, &me, &entry, &members).await {
                    app.team_failed(&e);
                }
                app.lock().team.under_way.remove(&id);
            });
        }
    }

    /// Notes what this member saw or did about a shared resource.
    fn team_row(&self, lock: &Lock, note: Option<String>) {
        let row = Row {
            phase: lock.phase,
            owner: lock.owner.clone(),
            note,
        };
        self.lock().team.rows.insert(lock.resource.clone(), row);
    }

    /// One step of `me` for the shared resource `entry` (see
    /// [`step`]). A table error ends it: nothing more is done.
    async fn team_step(
        &self,
        table: &dyn TeamTable,
        me: &str,
        entry: &Entry,
        members: &[Presence],
    ) -> Result<(), CloudError> {
        let lock = table.lock(&entry.id).await?;
        match step(me, &lock, members, false, table.now()) {
            Step::Take(taken) => match table.put_lock(&taken).await? {
                Written::Conflict(now) => {
                    let note = format!("done by {}", display_name(&now.owner));
                    self.team_row(&now, Some(note));
                    Ok(())
                }
                Written::Done if taken.phase == Phase::Sleeping => {
                    self.team_sleep(table, me, entry, taken).await
                }
                Written::Done => self.team_wake(table, me, entry, taken).await,
            },
            Step::DoneBy(_) if lock.phase == Phase::Asleep => {
                // A zombie waker may have left it up while the lock says
                // asleep: seen up, it is marked idle (and slept again).
                let up = (self.manager.cloud())
                    .inspect(&entry.id, entry.profile.as_deref())
                    .await
                    .is_ok_and(|o| o.capacity.is_up());
                if up {
                    tracing::warn!(
                        "{}: up while the team table says asleep: marked idle",
                        entry.id
                    );
                    let idle = lock.woken(me, table.now());
                    if table.put_lock(&idle).await? == Written::Done {
                        self.team_row(&idle, Some("up while the lock said asleep".into()));
                        return Ok(());
                    }
                }
                let note = format!("done by {}", display_name(&lock.owner));
                self.team_row(&lock, Some(note));
                Ok(())
            }
            Step::DoneBy(who) => {
                let note = format!("done by {}", display_name(&who));
                self.team_row(&lock, Some(note));
                Ok(())
            }
            Step::HeldBy(who) => {
                let note = format!("held by {}", display_name(&who));
                self.team_row(&lock, Some(note));
                Ok(())
            }
            Step::Wait => {
                let note = format!("waiting for {}'s sleep", display_name(&lock.owner));
                self.team_row(&lock, Some(note));
                Ok(())
            }
            Step::Stay => {
                self.team_row(&lock, None);
                Ok(())
            }
        }
    }

    /// `me` holds the lock of `entry` to sleep it: reads presence again,
    /// checks the busy veto, saves the capacity in the lock, stops it and
    /// writes it asleep; gives the lock back if anyone came back, holds it,
    /// or it is at work.
    async fn team_sleep(
        &self,
        table: &dyn TeamTable,
        me: &str,
        entry: &Entry,
        taken: Lock,
    ) -> Result<(), CloudError> {
        let members = table.presence().await?;
        if let Confirm::Release(back) = confirm_sleep(me, &taken, &members, table.now()) {
            return self.team_release(table, back, "someone came back").await;
        }
        let busy = self.settings().busy.clone();
        let (observed, check) = match self.manager.busy_check(entry, &busy).await {
            Ok(found) => found,
            Err(e) => {
                let back = taken.release(me, table.now());
                return self.team_release(table, back, &e.to_string()).await;
            }
        };
        if let Check::Busy(why) = check {
            let back = taken.release(me, table.now());
            return self.team_release(table, back, &why).await;
        }
        let saving = taken.saving(me, observed.capacity, table.now());
        if let Written::Conflict(now) = table.put_lock(&saving).await? {
            let note = format!("done by {}", display_name(&now.owner));
            self.team_row(&now, Some(note));
            return Ok(());
        }
        let outcomes = (self.manager.sleep_shared(entry, &busy, Trigger::Team).await)
            .unwrap_or_else(|e| vec![failed(entry, e.to_string())]);
        let down = outcomes.iter().all(|o| {
            matches!(
                o.action,
                Action::Stopped | Action::AlreadyAsleep | Action::LeftDown
            )
        });
        if !down {
            let why = outcomes.iter().find_map(|o| o.error.clone());
            let back = saving.release(me, table.now());
            let why = why.unwrap_or_else(|| "not stopped".into());
            tracing::warn!("{}: the team's sleep failed: {why}", entry.id);
            return self.team_release(table, back, &why).await;
        }
        let asleep = saving.asleep(me, table.now());
        match table.put_lock(&asleep).await? {
            Written::Done => {
                tracing::info!("{}: asleep (every member away)", entry.id);
                self.team_row(&asleep, Some("slept by this member".into()));
                self.emit(Event::Asleep(outcomes));
                Ok(())
            }
            Written::Conflict(now) => {
                // Taken over while this member was stopping it (cut off
                // longer than its lease): fail safe, it goes back up.
                tracing::warn!(
                    "{}: the team took the lock over mid-sleep: restoring",
                    entry.id
                );
                if let Some(saved) = saving.saved {
                    let _ = self.manager.wake_shared(entry, saved, Trigger::Team).await;
                }
                let note = format!("taken over by {}", display_name(&now.owner));
                self.team_row(&now, Some(note));
                Ok(())
            }
        }
    }

    /// Writes `back` (the lock given back) and notes why.
    async fn team_release(
        &self,
        table: &dyn TeamTable,
        back: Lock,
        why: &str,
    ) -> Result<(), CloudError> {
        let now = match table.put_lock(&back).await? {
            Written::Done => back,
            Written::Conflict(now) => now,
        };
        self.team_row(&now, Some(format!("kept up: {why}")));
        Ok(())
    }

    /// `me` holds the lock of `entry` to wake it: restores the saved
    /// capacity and writes it idle; a wake that fails leaves the lock
    /// waking with `me` as owner, taken again at the next step.
    async fn team_wake(
        &self,
        table: &dyn TeamTable,
        me: &str,
        entry: &Entry,
        taken: Lock,
    ) -> Result<(), CloudError> {
        let outcomes = match taken.saved {
            Some(saved) => (self.manager.wake_shared(entry, saved, Trigger::Team).await)
                .unwrap_or_else(|e| vec![failed(entry, e.to_string())]),
            None => Vec::new(),
        };
        if let Some(bad) = outcomes.iter().find(|o| o.action.is_failure()) {
            let why = bad.error.clone().unwrap_or_default();
            tracing::warn!("{}: the team's wake failed: {why}", entry.id);
            self.team_row(&taken, Some(format!("wake failed: {why}")));
            return Ok(());
        }
        let woken = taken.woken(me, table.now());
        let now = match table.put_lock(&woken).await? {
            Written::Done => woken,
            Written::Conflict(now) => now,
        };
        tracing::info!("{}: awake (a member is back)", entry.id);
        self.team_row(&now, Some("woken by this member".into()));
        if !outcomes.is_empty() {
            self.emit(Event::Awake(outcomes));
        }
        Ok(())
    }

    /// Team mode in STATUS, when it is on.
    pub(super) fn team_status(&self) -> (Option<TeamStatus>, Option<String>) {
        self.settings().team.as_ref().map_or((None, None), |_| {
            let table_now = self
                .team_table
                .get()
                .map_or_else(SystemTime::now, |t| t.now());
            let state = self.lock();
            let team = &state.team;
            let line = presence_line(&team.members, table_now, &clock);
            let resources = (team.rows.iter())
                .map(|(id, row)| TeamRow {
                    resource: id.clone(),
                    phase: row.phase.as_str().to_string(),
                    presence_line: line.clone(),
                    by: (!row.owner.is_empty()).then(|| display_name(&row.owner)),
                    note: row.note.clone(),
                })
                .collect();
            let status = TeamStatus {
                member: team.member.as_deref().map(display_name).unwrap_or_default(),
                presence_line: line,
                resources,
            };
            (Some(status), team.error.clone())
        })
    }
}

/// Away while the idle tracker is asleep, else active.
fn state_of(idle: IdleState) -> State {
    match idle {
        IdleState::Asleep => State::Away,
        _ => State::Active,
    }
}

/// A sleep or wake of `entry` that could not even be recorded.
fn failed(entry: &Entry, error: String) -> Outcome {
    Outcome {
        resource: entry.id.clone(),
        action: Action::Failed,
        before: None,
        saved: None,
        error: Some(error),
        retrying: None,
    }
}
