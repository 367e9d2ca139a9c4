//! How many rounds deep a sleep and a wake are: every fake call takes the
//! same time on a paused clock (a batch call as long as a single one, as
//! AWS answers), so the time taken over a call's time is the number of
//! calls one after another, which a far region's round trip multiplies.
//! The figures are today's: a change that makes either deeper (or
//! shallower, to be written down here) fails here.

#[cfg(test)]
mod tests {
    use super::super::tests::{busy_settings, entries};
    use super::super::Manager;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::history::Trigger;
    use crate::core::model::outcome::Action;
    use crate::core::model::resource::{Capacity, Desired, ResourceId, Running, Scaling};
    use crate::kinds::Kind;
    use crate::store::records::RecordsFile;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

    const CALL: Duration = Duration::from_millis(100);

    /// `n` mixed resources in 3 regions, as the bench's fleet: per region 10
    /// ECS services of one cluster, 3 EKS nodegroups, 3 Auto Scaling groups,
    /// 2 RDS databases, and EC2 instances for the rest.
    fn fleet(n: usize) -> Vec<(ResourceId, Capacity)> {
        let mut out = Vec::new();
        for (r, region) in ["us-east-2", "eu-north-1", "ap-northeast-1"]
            .iter()
            .enumerate()
        {
            let scaling = Scaling {
                min: 1,
                desired: 2,
                max: 3,
            };
            for i in 0..10 {
                let id = ResourceId::new(Kind::Ecs, ["bench".into(), format!("svc{i}")], *region);
                out.push((id, Capacity::of(Kind::Ecs, Desired(1 + i % 3))));
            }
            for i in 0..3 {
                let ng = ResourceId::new(Kind::Eks, ["bench".into(), format!("ng{i}")], *region);
                out.push((ng, Capacity::of(Kind::Eks, scaling)));
                let asg = ResourceId::new(Kind::Asg, [format!("asg{i}")], *region);
                out.push((asg, Capacity::of(Kind::Asg, scaling)));
            }
            for i in 0..2 {
                let db = ResourceId::new(Kind::Rds, [format!("db{i}")], *region);
                out.push((db, Capacity::of(Kind::Rds, Running(true))));
            }
            let ec2 = n / 3 + usize::from(r < n % 3) - 18;
            for i in 0..ec2 {
                let id = ResourceId::new(Kind::Ec2, [format!("i-{r}{i:016x}")], *region);
                out.push((id, Capacity::of(Kind::Ec2, Running(true))));
            }
        }
        out
    }

    /// A manager of a fake cloud holding `fleet`, as many calls at once as
    /// `aws.max_concurrent_calls` allows by default.
    fn manager_of(
        fleet: &[(ResourceId, Capacity)],
    ) -> (tempfile::TempDir, Arc<FakeCloud>, Manager<FakeCloud>) {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let m = Manager::new(
            cloud.clone(),
            RecordsFile::new(dir.path().join("s")),
            16,
            false,
        );
        for (id, up) in fleet {
            cloud.add(id, *up);
        }
        (dir, cloud, m)
    }

    /// The rounds of a sleep and of the wake after it, of `n` resources.
    async fn rounds(n: usize) -> (u32, u32) {
        let fleet = fleet(n);
        let (_dir, cloud, m) = manager_of(&fleet);
        *cloud.latency.lock().unwrap() = CALL;
        let ids: Vec<&ResourceId> = fleet.iter().map(|(id, _)| id).collect();
        let all = entries(&ids);
        let t0 = Instant::now();
        let slept = m.sleep(&all, &busy_settings(), Trigger::Idle).await;
        let sleep = t0.elapsed();
        let slept = slept.unwrap();
        assert!(
            slept.iter().all(|o| o.action == Action::Stopped),
            "{slept:?}"
        );
        let t0 = Instant::now();
        let woke = m.wake(&all, Trigger::Idle).await.unwrap();
        let wake = t0.elapsed();
        assert_eq!(woke.len(), n);
        for (id, up) in &fleet {
            assert_eq!(cloud.get(id).capacity, *up, "{id}");
        }
        let deep = |d: Duration| (d.as_millis() / CALL.as_millis()) as u32;
        (deep(sleep), deep(wake))
    }

    #[tokio::test(start_paused = true)]
    async fn the_search_for_tagged_resources_adds_no_round_to_a_sleep() {
        let fleet = fleet(200);
        let (_dir, cloud, m) = manager_of(&fleet);
        // Every one of them is tagged too (found again), and one more is.
        let extra = ResourceId::new(Kind::Ec2, ["i-0ff0000000000001".to_string()], "us-east-2");
        let up = Capacity::of(Kind::Ec2, Running(true));
        cloud.add(&extra, up);
        *cloud.tagged.lock().unwrap() = fleet.iter().map(|(id, _)| id.clone()).collect();
        *cloud.latency.lock().unwrap() = CALL;
        let ids: Vec<&ResourceId> = fleet.iter().map(|(id, _)| id).collect();
        let mut aws = crate::core::config::settings::Settings::default().aws;
        aws.regions = vec![
            "us-east-2".into(),
            "eu-north-1".into(),
            "ap-northeast-1".into(),
        ];
        let busy = busy_settings();
        let sleep = |e: Vec<crate::core::config::registry::Entry>| {
            let (m, busy) = (&m, &busy);
            async move { m.sleep(&e, busy, Trigger::Command).await }
        };
        let t0 = Instant::now();
        let (found, slept) = m.beside_search(entries(&ids), &aws, sleep).await;
        assert_eq!((found.len(), slept.unwrap().len()), (200, 200));
        assert_eq!(t0.elapsed(), CALL * 3, "the search beside the look");

        // One found that services.yaml lacks: slept after, in a run of its own.
        m.wake(&entries(&ids), Trigger::Command).await.unwrap();
        cloud.tagged.lock().unwrap().push(extra.clone());
        let t0 = Instant::now();
        let (found, slept) = m.beside_search(entries(&ids), &aws, sleep).await;
        let slept = slept.unwrap();
        assert_eq!((found.len(), slept.len()), (201, 201));
        assert!(
            slept.iter().all(|o| o.action == Action::Stopped),
            "{slept:?}"
        );
        assert_eq!(t0.elapsed(), CALL * 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_and_a_wake_are_as_deep_for_1000_resources_as_for_200() {
        let small = rounds(200).await;
        let big = rounds(1000).await;
        eprintln!("rounds deep (sleep, wake): 200 resources {small:?}, 1000 resources {big:?}");
        assert_eq!(small, big, "deeper with the fleet's size");
        let (sleep, wake) = small;
        // A sleep: the look (with the busy metrics), the tags with the
        // stops, read back (what each is made of read beside). A wake: the
        // look, restores, read back (the untags beside it). The targets are
        // 6 and 5 (docs/benchmarks.md).
        assert_eq!(sleep, 3, "a sleep {sleep} rounds deep");
        assert_eq!(wake, 3, "a wake {wake} rounds deep");
    }
}
