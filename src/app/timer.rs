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
            let event = {
                // Signalled only if the tick changed more than the time it
                // last looked: a change wakes every loop that follows the
                // state (the tray among them), and most ticks (every 30 s
                // at most) change nothing else.
                let mut state = self.lock();
                let before = state.tracker.clone();
                let event = state.quietly().tracker.tick(now());
                if state.tracker.moved_on_from(&before) {
                    state.touch();
                }
                event
            };
            if let Some(event) = event {
                self.react(event, Trigger::Idle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app_in, next_event, press, schedules, WITH_ROLE};
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::activity::ActivityKind;
    use crate::core::model::resource::{Capacity, Desired, Kind, ResourceId};
    use crate::core::policy::deadline;
    use crate::core::protocol::status::StateName;
    use crate::manager::now_seconds;
    use std::sync::Arc;
    use std::time::Duration;

    fn service(name: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", name], "us-east-1")
    }

    type Running = (
        tempfile::TempDir,
        Arc<FakeCloud>,
        Arc<super::super::App<FakeCloud>>,
        tokio::sync::mpsc::UnboundedReceiver<crate::core::protocol::status::Event>,
    );

    /// ECS services `a` (own timeout 6 s), `b` (20.4 s) and `c` (the
    /// settings' 10 min; warning 1 min, deadline margin 5 min), each at 2,
    /// with the timer and deadline loops running.
    fn three(up: Capacity) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        for n in ["a", "b", "c"] {
            cloud.add(&service(n), up);
        }
        let entry = |n: &str, extra: &str| {
            format!("  - cluster_name: c\n    service_name: {n}\n    region: us-east-1\n{extra}")
        };
        let yaml = format!(
            "ecs_services:\n{}{}{}",
            entry("a", "    timeout_minutes: 0.1\n"),
            entry("b", "    timeout_minutes: 0.34\n"),
            entry("c", "")
        );
        let (app, rx) = app_in(dir.path(), cloud.clone(), WITH_ROLE, &yaml);
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        (dir, cloud, app, rx)
    }

    /// STATUS with `a` asleep 6 s in: `partly_asleep`, `b` next.
    fn partly_asleep(status: &crate::core::protocol::status::Status) {
        assert_eq!(status.state, StateName::PartlyAsleep);
        let tenths = |s: Option<f64>| s.map(|s| (s * 10.0).round() as u64);
        assert_eq!(tenths(status.sleep_in_seconds), Some(144));
        let rows: Vec<(f64, bool, Option<u64>, usize)> = (status.timeouts.iter())
            .map(|r| {
                let n = r.resources.len();
                (r.timeout_minutes, r.asleep, tenths(r.sleep_in_seconds), n)
            })
            .collect();
        assert_eq!(
            rows,
            [
                (0.1, true, None, 1),
                (0.34, false, Some(144), 1),
                (10.0, false, Some(5940), 1)
            ]
        );
        let line = &status.tray.line;
        assert!(
            line.starts_with("Partly asleep: 1 resources stopped, more in 14 s"),
            "{line}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_timeout_sleeps_its_own_resources_at_its_time_with_its_own_deadline() {
        let (up, down) = (
            Capacity::of(Kind::Ecs, Desired(2)),
            Capacity::of(Kind::Ecs, Desired(0)),
        );
        let (_dir, cloud, app, mut rx) = three(up);
        let t0 = tokio::time::Instant::now();
        let at = |n: &str| {
            schedules(&cloud)
                .get(&deadline::name(&app.member, &service(n)))
                .map(|s| s.at)
        };
        // The warnings (1 min, so at once for both short ones), each naming its own.
        for name in ["a", "b"] {
            let event = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
            assert_eq!(event["event"], "warning", "{event}");
            assert_eq!(
                event["detail"]["names"],
                serde_json::json!([format!("c/{name}")])
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = now_seconds() as u64 - 1;
        for (n, timeout) in [("a", 6), ("b", 20), ("c", 600)] {
            let at = at(n).unwrap();
            assert!(
                (start + timeout + 300..=start + timeout + 302).contains(&at),
                "{n}: {at}"
            );
        }

        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(t0.elapsed(), Duration::from_secs(6));
        let caps: Vec<Capacity> = ["a", "b", "c"]
            .map(|n| cloud.get(&service(n)).capacity)
            .into();
        assert_eq!(caps, [down, up, up]);
        partly_asleep(&app.status());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(at("a"), None, "asleep: no deadline");

        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(t0.elapsed(), Duration::from_millis(20_400));
        assert_eq!(cloud.get(&service("b")).capacity, down);
        assert_eq!(cloud.get(&service("c")).capacity, up);
        assert_eq!(next_event(&mut rx).await, "warning");
        assert_eq!(t0.elapsed(), Duration::from_secs(9 * 60));
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(t0.elapsed(), Duration::from_secs(10 * 60));
        assert_eq!(app.status().state, StateName::Asleep);

        // The return wakes every group at once.
        press(&app, ActivityKind::Keyboard);
        // (The short ones' warnings, 1 min ahead, come at once.)
        while next_event(&mut rx).await != "awake" {}
        let caps: Vec<Capacity> = ["a", "b", "c"]
            .map(|n| cloud.get(&service(n)).capacity)
            .into();
        assert_eq!(caps, [up, up, up]);
        // Counting again (the short ones' warnings already out).
        assert_eq!(app.status().state, StateName::Warning);
        assert!(app.status().timeouts.iter().all(|r| !r.asleep));
    }
}
