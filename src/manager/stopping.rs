//! The stops of a sleep, batch by batch, and putting them back when the
//! user returns in the middle (see [`crate::core::policy::cut_short`]).

use super::wake::Waking;
use super::*;
use crate::core::policy::cut_short::{after_stop, undo, Reached, Undo};
use tokio::sync::watch;

/// How a sleep ended for one resource it meant to stop.
pub(super) struct Ended {
    pub stop: ToStop,
    /// How far the sleep got with it.
    pub reached: Reached,
    pub facts: Option<Facts>,
    /// How its stop ended, once read back (`None`: cut short before).
    pub end: Option<Stopped>,
}

/// How a resource a return put back ended: its outcome and whether its
/// record goes (it is up) or stays (asleep: the wake that follows the
/// return restores it).
pub(super) struct PutBack {
    pub stop: ToStop,
    pub facts: Option<Facts>,
    pub outcome: Outcome,
    /// It was stopped and is up again (a sleep and a wake to log).
    pub woken: bool,
    pub up: bool,
}

/// Whether the user came back since `back` was made.
fn returned(back: &watch::Receiver<u64>) -> bool {
    back.has_changed().unwrap_or(false)
}

/// `to_stop` in batches: the resources each adapter call answers together
/// (see [`crate::kinds::Batch`]).
fn batches(to_stop: Vec<ToStop>) -> Vec<Vec<ToStop>> {
    let mut groups: BTreeMap<BatchOf, Vec<ToStop>> = BTreeMap::new();
    for s in to_stop {
        groups
            .entry(batch_of(&s.0.id, &s.0.profile))
            .or_default()
            .push(s);
    }
    groups.into_values().collect()
}

impl<C: CloudControl> Manager<C> {
    /// Tags, stops and reads back `to_stop`, batch by batch (at most
    /// `concurrency` batches at once), and untags `forget`. Once `back`
    /// changes (the user is back), no call more is sent to stop anything:
    /// what is down comes back at once, while the calls in flight end;
    /// then what they reached is put back. Returns how each stop ended
    /// (none cut short), or how each was put back.
    pub(super) async fn tag_and_stop(
        &self,
        to_stop: Vec<ToStop>,
        forget: &[Entry],
        back: watch::Receiver<u64>,
    ) -> Result<Vec<Ended>, Vec<PutBack>> {
        let forget = forget
            .iter()
            .map(|e| (e.id.clone(), e.profile.clone(), None))
            .collect();
        let mut pipeline = stream::iter(batches(to_stop))
            .map(|batch| self.sleep_batch(batch, back.clone()))
            .buffer_unordered(self.concurrency.max(1));
        let mut done: Vec<Ended> = Vec::new();
        let mut wait = back.clone();
        let run = async {
            loop {
                tokio::select! {
                    batch = pipeline.next() => match batch {
                        Some(ended) => done.extend(ended),
                        None => return false,
                    },
                    Ok(()) = wait.changed() => return true,
                }
            }
        };
        let (cut, _) = tokio::join!(run, self.write_sleep_tags(forget));
        // A batch that saw the return first ends unfinished, maybe before
        // this loop saw it.
        if !cut && done.iter().all(|e| e.end.is_some()) {
            return Ok(done);
        }
        tracing::info!("the user is back: the sleep stops here and puts back what it did");
        // Each batch still going is put back as soon as its call in flight
        // ends, while what is down already comes back.
        let rest = pipeline
            .map(|ended| self.put_back(ended))
            .buffer_unordered(usize::MAX)
            .concat();
        let (mut put, rest) = tokio::join!(self.put_back(done), rest);
        put.extend(rest);
        Err(put)
    }

    /// One batch of a sleep: tags, stops, reads back, while what each is
    /// made of is read beside (for pricing: never on the way of the stop,
    /// and dropped if the user is back); stops where it is when the user
    /// is back.
    async fn sleep_batch(&self, batch: Vec<ToStop>, back: watch::Receiver<u64>) -> Vec<Ended> {
        let n = batch.len();
        let targets: Vec<(ResourceId, Option<String>)> = (batch.iter())
            .map(|s| (s.0.id.clone(), s.0.profile.clone()))
            .collect();
        let mut facts_back = back.clone();
        let facts = async {
            if returned(&facts_back) {
                return vec![None; n];
            }
            tokio::select! {
                facts = self.facts_of(targets.clone()) => facts,
                Ok(()) = facts_back.changed() => vec![None; n],
            }
        };
        let ((reached, ends), facts) = tokio::join!(self.stop_batch(&batch, &targets, back), facts);
        let mut ends = ends.map(|e| e.into_iter().map(Some).collect::<Vec<_>>());
        (batch.into_iter().zip(reached).zip(facts).enumerate())
            .map(|(i, ((stop, reached), facts))| Ended {
                stop,
                reached,
                facts,
                end: ends.as_mut().and_then(|e| e[i].take()),
            })
            .collect()
    }

    /// Tags, stops and reads back one batch: how far it got with each, and
    /// how each stop ended (`None` when the user came back before the end).
    /// The sleep tag goes with the stop, as one round (kube-downscaler writes
    /// its annotation in the scale-down's own update): the record on disk
    /// came before both, and a tag that fails never kept a stop back.
    async fn stop_batch(
        &self,
        batch: &[ToStop],
        targets: &[(ResourceId, Option<String>)],
        mut back: watch::Receiver<u64>,
    ) -> (Vec<Reached>, Option<Vec<Stopped>>) {
        let n = batch.len();
        if returned(&back) {
            return (vec![Reached::Recorded; n], None);
        }
        let tags = (targets.iter().zip(batch))
            .map(|((id, p), s)| (id.clone(), p.clone(), Some(s.1)))
            .collect();
        let stops = (batch.iter())
            .map(|(e, saved, _, _)| {
                let asleep = saved.asleep().hibernating(e.hibernate);
                (e.id.clone(), e.profile.clone(), asleep)
            })
            .collect();
        // Both are let end, even once the user is back: a tag that landed
        // after its removal would outlive the sleep.
        let (tagged, stops) = tokio::join!(self.write_sleep_tags(tags), self.stop(stops));
        let reached: Vec<Reached> = (stops.iter())
            .map(|s| after_stop(s.as_ref().is_err_and(CloudError::refused)))
            .collect();
        // A resource whose stop failed for good loses its tag again (one
        // that failed for a passing reason keeps it and its record: the
        // sleep is tried again).
        let undo = (targets.iter())
            .zip(tagged.iter().zip(&stops))
            .filter(|(_, (tag, stop))| {
                tag.is_ok() && matches!(stop, Err(e) if e.transient().is_none())
            })
            .map(|((id, p), _)| (id.clone(), p.clone(), None));
        let read_back = (batch.iter())
            .zip(&stops)
            .filter(|(_, stop)| stop.is_ok())
            .map(|((e, saved, _, _), _)| (e.id.clone(), e.profile.clone(), saved.asleep()))
            .collect();
        // Reads only: dropped as soon as the user is back.
        let read = async {
            tokio::select! {
                reads = self.confirm(read_back) => Some(reads),
                Ok(()) = back.changed() => None,
            }
        };
        let (_, reads) = tokio::join!(self.write_sleep_tags(undo.collect()), read);
        let Some(reads) = reads else {
            return (reached, None);
        };
        let mut reads = reads.into_iter();
        let ends = (batch.iter())
            .zip(tagged.into_iter().zip(stops))
            .map(|((entry, saved, obs, note), (tagged, stop))| {
                let (action, error, retrying) = match stop {
                    Err(e) => (Action::Failed, Some(e.to_string()), e.transient()),
                    Ok(how) => stop_result(reads.next(), tagged, how, note.clone()),
                };
                (entry.clone(), obs.capacity, *saved, action, error, retrying)
            })
            .collect();
        (reached, Some(ends))
    }

    /// Puts back what a sleep cut short reached (see [`undo`]): wakes
    /// what may be down to its saved capacity, untags what was tagged.
    async fn put_back(&self, ended: Vec<Ended>) -> Vec<PutBack> {
        let (wake, rest): (Vec<Ended>, Vec<Ended>) =
            (ended.into_iter()).partition(|e| undo(e.reached) == Undo::Wake);
        let untag = (rest.iter())
            .filter(|e| undo(e.reached) == Undo::Untag)
            .map(|e| (e.stop.0.id.clone(), e.stop.0.profile.clone(), None))
            .collect();
        let waking: Vec<Waking> = (wake.iter())
            .map(|e| {
                let (entry, saved, obs, _) = &e.stop;
                (
                    entry.id.clone(),
                    entry.profile.clone(),
                    obs.clone(),
                    *saved,
                    true,
                )
            })
            .collect();
        let (woken, untagged) = tokio::join!(self.restore(waking), self.write_sleep_tags(untag));
        let mut untagged = untagged.into_iter();
        let left_up = rest.into_iter().map(|e| {
            let untag = match undo(e.reached) {
                Undo::Untag => untagged.next().unwrap_or(Ok(())),
                _ => Ok(()),
            };
            let note = untag
                .err()
                .map(|e| format!("the sleep tag was not removed: {e}"));
            let outcome = cut_short(&e.stop, note);
            (e, outcome, false, true)
        });
        let woken = wake.into_iter().zip(woken).map(|(e, (_, restore, untag))| {
            match restore {
                Ok(Ok(())) => {
                    let note = untag.err().map_or_else(
                        || "stopped, then woken: you came back".to_string(),
                        |u| format!("stopped, then woken: you came back; the sleep tag was not removed: {u}"),
                    );
                    let outcome = cut_short(&e.stop, Some(note));
                    (e, outcome, true, true)
                }
                failed => {
                    let why = match failed {
                        Err(err) => err.to_string(),
                        Ok(Err(shows)) => shows,
                        Ok(Ok(())) => String::new(),
                    };
                    tracing::warn!("{}: not woken back yet: {why}", e.stop.0.id);
                    let mut outcome = cut_short(&e.stop, Some(format!("asleep, the wake follows: {why}")));
                    outcome.action = Action::Stopped;
                    (e, outcome, false, false)
                }
            }
        });
        left_up
            .chain(woken)
            .map(|(e, outcome, woken, up)| PutBack {
                stop: e.stop,
                facts: e.facts,
                outcome,
                woken,
                up,
            })
            .collect()
    }
}

/// The outcome of a resource a return left up (or woke back): cancelled.
pub(super) fn cut_short((entry, saved, obs, _): &ToStop, note: Option<String>) -> Outcome {
    Outcome {
        resource: entry.id.clone(),
        action: Action::Cancelled,
        before: Some(obs.capacity),
        saved: Some(*saved),
        error: note,
        retrying: None,
    }
}

/// A resource to stop: its entry, the capacity saved, how it looked
/// before, and a note for its outcome.
pub(super) type ToStop = (Entry, Capacity, Observed, Option<String>);

/// How one stop ended: entry, capacity before, capacity saved, action,
/// error or note, and why it will be tried again (if it will).
pub(super) type Stopped = (
    Entry,
    Capacity,
    Capacity,
    Action,
    Option<String>,
    Option<Cause>,
);

/// How a stop AWS accepted ended, from its read back and its tag.
pub(super) fn stop_result(
    reached: Option<Result<(), String>>,
    tagged: Result<(), CloudError>,
    how: Option<String>,
    note: Option<String>,
) -> (Action, Option<String>, Option<Cause>) {
    match (
        reached.unwrap_or_else(|| Err("not read back".into())),
        tagged,
    ) {
        (Err(shows), _) => (Action::DidNotReach, Some(shows), Some(Cause::NotConfirmed)),
        (Ok(()), Err(e)) => (
            Action::Stopped,
            Some(format!("stopped, but the sleep tag was not written: {e}")),
            None,
        ),
        (Ok(()), Ok(())) => {
            let notes: Vec<String> = how.into_iter().chain(note).collect();
            (
                Action::Stopped,
                (!notes.is_empty()).then(|| notes.join("; ")),
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{busy_settings, ecs, entries, setup};
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::resource::Desired;
    use std::time::Duration;

    /// A manager, its fake cloud, and the one ECS service on it.
    type OneService = (
        tempfile::TempDir,
        Arc<FakeCloud>,
        Manager<FakeCloud>,
        ResourceId,
        Capacity,
    );

    /// One ECS service at 2 tasks, each call taking 100 ms.
    fn one_service_at_100_ms() -> OneService {
        let (dir, cloud, m) = setup(false);
        let a = ecs("a");
        let up = Capacity::of(Kind::Ecs, Desired(2));
        cloud.add(&a, up);
        *cloud.latency.lock().unwrap() = Duration::from_millis(100);
        (dir, cloud, m, a, up)
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_that_cannot_be_woken_back_stays_recorded_for_the_wake() {
        let (_d, cloud, m, a, up) = one_service_at_100_ms();
        let all = entries(&[&a]);
        let busy = busy_settings();
        let sleep = m.sleep(&all, &busy, Trigger::Idle);
        let back = async {
            while cloud.get(&a).capacity == up {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Stopped, being read back; AWS throttles the wake back.
            cloud.throttle.lock().unwrap().push(a.clone());
            m.cut_sleep_short();
        };
        let (out, ()) = tokio::join!(sleep, back);
        let out = out.unwrap();
        assert_eq!(out[0].action, Action::Stopped, "{out:?}");
        assert!(out[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("asleep, the wake follows"));
        assert_eq!(m.records().unwrap()[&a].phase, Phase::Asleep);
        assert_eq!(cloud.get(&a).sleep_tag, Some(up));

        cloud.throttle.lock().unwrap().clear();
        let woke = m.wake(&all, Trigger::Idle).await.unwrap();
        assert_eq!(woke[0].action, Action::Restored);
        assert_eq!(
            (cloud.get(&a).capacity, cloud.get(&a).sleep_tag),
            (up, None)
        );
        assert!(m.records().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_return_while_the_tag_and_the_stop_are_in_flight_wakes_it_back_untagged() {
        let (_d, cloud, m, a, up) = one_service_at_100_ms();
        let all = entries(&[&a]);
        let busy = busy_settings();
        let sleep = m.sleep(&all, &busy, Trigger::Idle);
        let back = async {
            // Inspected, busy check read (100 ms each): the tag and the stop
            // are on their way, together.
            while cloud.metric_calls.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            m.cut_sleep_short();
        };
        let (out, ()) = tokio::join!(sleep, back);
        let out = out.unwrap();
        assert_eq!(
            (out[0].action, out[0].error.as_deref()),
            (
                Action::Cancelled,
                Some("stopped, then woken: you came back")
            ),
            "the stop may have reached AWS: woken back"
        );
        let set = cloud.set.lock().unwrap().clone();
        assert_eq!(set.len(), 2, "stopped, restored: {set:?}");
        assert_eq!(
            (cloud.get(&a).capacity, cloud.get(&a).sleep_tag),
            (up, None)
        );
        assert!(m.records().unwrap().is_empty());

        // The wake that follows the return does not look at it again (a
        // look takes 100 ms here); a later one does.
        let t0 = tokio::time::Instant::now();
        assert!(m.wake(&all, Trigger::Idle).await.unwrap().is_empty());
        assert_eq!(t0.elapsed(), Duration::ZERO, "looked at again");
        let t0 = tokio::time::Instant::now();
        m.wake(&all, Trigger::Idle).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
    }
}
