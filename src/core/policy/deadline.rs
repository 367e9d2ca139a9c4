//! The AWS-side deadline (a dead man's switch): while resources are awake,
//! one EventBridge Scheduler one-time schedule per resource, in the schedule
//! group [`GROUP`], puts it to sleep the way cloudnap would (see each kind's
//! `sleep_call`) if cloudnap is not there to move the deadline on: a
//! suspended laptop, a crash, a dead battery, a lost network. Pure: when the
//! deadline is, when it is worth moving, what each schedule is called and
//! calls.

use crate::core::model::resource::ResourceId;
pub use crate::kinds::spec::SleepCall;
use std::collections::BTreeMap;
use std::time::Duration;

/// The schedule group holding every cloudnap deadline.
pub const GROUP: &str = "cloudnap";

/// The longest a schedule name may be (AWS: 1 to 64 characters).
pub const MAX_NAME: usize = 64;

/// How long at most the deadline may lag behind while the user is active
/// before it is moved: at most one move per resource every 3 minutes.
pub const MOVE_EVERY: Duration = Duration::from_secs(180);

/// A deadline earlier than the armed one by less than this is not worth a
/// call (the idle clock and the wall clock drift by a second or so).
const SLACK: u64 = 5;

/// The schedule for one resource: its name, when it fires, what it calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    /// Unix seconds.
    pub at: u64,
    pub call: SleepCall,
}

/// The schedule that puts `id` to sleep at `at` (Unix seconds), for `member`
/// (see [`member`]).
pub fn schedule(member: &str, id: &ResourceId, at: u64) -> Schedule {
    Schedule {
        name: name(member, id),
        at,
        call: (id.kind().spec().sleep_call)(id.names()),
    }
}

/// When the deadline is at `now` (Unix seconds): when the idle timeout
/// ends (`left` from now) plus `margin`, so that cloudnap's own sleep comes
/// first whenever it is there to do it.
pub fn deadline_at(now: u64, left: Duration, margin: Duration) -> u64 {
    now.saturating_add(left.as_secs())
        .saturating_add(margin.as_secs())
}

/// How far the armed deadline may lag behind the wanted one before it is
/// moved: [`MOVE_EVERY`], but at most half of `timeout + margin`, so that a
/// deadline never fires while the user is active, however short the
/// timeout.
pub fn move_every(timeout: Duration, margin: Duration) -> Duration {
    MOVE_EVERY.min((timeout + margin) / 2)
}

/// Whether a deadline armed for `armed` (Unix seconds; `None`: not armed)
/// must be set to `wanted`: when it is not armed, when `wanted` is earlier
/// (a shorter timeout: the deadline must never come later than promised),
/// or when it lags `wanted` by `every` or more (the user has been active).
pub fn needs_move(armed: Option<u64>, wanted: u64, every: Duration) -> bool {
    match armed {
        None => true,
        Some(armed) => wanted + SLACK < armed || wanted >= armed + every.as_secs(),
    }
}

/// Each timeout group's deadline at `now` (Unix seconds): [`deadline_at`]
/// of the time `lefts` gives it until it sleeps.
pub fn by_timeout(
    now: u64,
    lefts: &BTreeMap<Duration, Duration>,
    margin: Duration,
) -> BTreeMap<Duration, u64> {
    (lefts.iter())
        .map(|(timeout, left)| (*timeout, deadline_at(now, *left, margin)))
        .collect()
}

/// Whether any timeout group's deadline armed for `armed` must be set to
/// `wanted` (see [`needs_move`]; each group moves by its own
/// [`move_every`]).
pub fn any_needs_move(
    armed: &BTreeMap<Duration, u64>,
    wanted: &BTreeMap<Duration, u64>,
    margin: Duration,
) -> bool {
    (wanted.iter()).any(|(timeout, at)| {
        needs_move(
            armed.get(timeout).copied(),
            *at,
            move_every(*timeout, margin),
        )
    })
}

/// How far this machine's clock may be from AWS's, for [`may_have_come`].
const CLOCK_SKEW: u64 = 60;

/// Whether a deadline armed for `armed` (Unix seconds) may have put
/// resources to sleep by `now`: once it is close enough that the two
/// clocks may disagree.
pub fn may_have_come(armed: Option<u64>, now: u64) -> bool {
    armed.is_some_and(|at| at <= now + CLOCK_SKEW)
}

/// The member part of schedule names: `host-user-install` (`host-install`
/// when the user is unknown), where `install` tells apart the config
/// directories of one user on one host (see [`Paths::install_id`]). Reduced
/// to the characters AWS allows in names (others become `_`) and to 32
/// characters, so one user's machines and installs keep their own
/// deadlines apart.
///
/// [`Paths::install_id`]: crate::store::config::Paths::install_id
pub fn member(host: &str, user: &str, install: u64) -> String {
    let both = match user {
        "" => host.to_string(),
        user => format!("{host}-{user}"),
    };
    let mut member: String = both
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .take(25)
        .collect();
    member.push_str(&format!("-{:06x}", install & 0xff_ffff));
    member
}

/// The prefix of every schedule name of `member`.
pub fn prefix(member: &str) -> String {
    format!("{member}.")
}

/// The schedule name for `id`: `member.kind.hash`, where hash is 16 hex
/// digits of a stable (FNV-1a) hash of the kind, names and region: the same
/// on every run and machine, at most 64 characters.
pub fn name(member: &str, id: &ResourceId) -> String {
    let label = id.kind().spec().label;
    let hash = crate::core::fnv1a(
        std::iter::once(label)
            .chain(id.names().iter().map(String::as_str))
            .chain(std::iter::once(id.region()))
            .flat_map(|part| part.bytes().chain(std::iter::once(0))),
    );
    format!(
        "{}{}.{hash:016x}",
        prefix(member),
        label.to_ascii_lowercase()
    )
}

/// The schedules of `member` (by name) that are for none of `wanted`:
/// left by a crashed run, or for a resource no longer registered or awake.
pub fn stale<'a>(member: &str, found: &'a [String], wanted: &[String]) -> Vec<&'a str> {
    let prefix = prefix(member);
    found
        .iter()
        .filter(|n| n.starts_with(&prefix) && !wanted.contains(n))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;
    use serde_json::json;

    const MIN: u64 = 60;

    #[test]
    fn the_deadline_is_the_end_of_the_timeout_plus_the_margin() {
        let now = 1_000_000;
        let at = deadline_at(
            now,
            Duration::from_secs(30 * MIN),
            Duration::from_secs(10 * MIN),
        );
        assert_eq!(at, now + 40 * MIN);
        // 12 idle minutes later the wanted deadline has not moved.
        let later = deadline_at(
            now + 12 * MIN,
            Duration::from_secs(18 * MIN),
            Duration::from_secs(10 * MIN),
        );
        assert_eq!(later, at);
    }

    #[test]
    fn each_timeout_has_its_deadline_and_moves_by_its_own_pace() {
        let (s, margin) = (Duration::from_secs, Duration::from_secs(60));
        let lefts: BTreeMap<Duration, Duration> =
            [(s(6), s(4)), (s(20), s(18)), (s(1800), s(1798))].into();
        let ats = by_timeout(1000, &lefts, margin);
        assert_eq!(
            ats.values().copied().collect::<Vec<_>>(),
            [1064, 1078, 2858]
        );
        assert!(any_needs_move(&BTreeMap::new(), &ats, margin), "not armed");
        assert!(!any_needs_move(&ats, &ats, margin));
        // 10 s of activity later: the 6 s group moves at 33 s of lag at
        // most ((6 + 60) / 2); the 30 min group at 3 min: neither yet.
        let later: BTreeMap<Duration, Duration> = [(s(6), s(6)), (s(1800), s(1800))].into();
        let wanted = by_timeout(1010, &later, margin);
        assert!(!any_needs_move(&ats, &wanted, margin));
        let much_later = by_timeout(1040, &later, margin);
        assert!(
            any_needs_move(&ats, &much_later, margin),
            "6 s group lags 42 s"
        );
        // A group asleep is not wanted, whatever was armed for it.
        let asleep: BTreeMap<Duration, Duration> = [(s(1800), s(1790))].into();
        assert!(!any_needs_move(
            &ats,
            &by_timeout(1008, &asleep, margin),
            margin
        ));
    }

    #[test]
    fn an_active_user_moves_the_deadline_at_most_every_few_minutes() {
        let (timeout, margin) = (Duration::from_secs(30 * MIN), Duration::from_secs(10 * MIN));
        let every = move_every(timeout, margin);
        assert_eq!(every, MOVE_EVERY);
        let t0 = 1_000_000;
        let armed = deadline_at(t0, timeout, margin);
        assert!(needs_move(None, armed, every), "not armed yet");
        let mut moves = 0;
        let mut current = armed;
        // Active every second for an hour (the fake clock): one move per
        // 3 minutes, and the armed deadline never comes within the timeout
        // of an active user.
        for s in 1..=3600 {
            let now = t0 + s;
            let wanted = deadline_at(now, timeout, margin);
            if needs_move(Some(current), wanted, every) {
                current = wanted;
                moves += 1;
            }
            assert!(current >= now + timeout.as_secs() + margin.as_secs() - every.as_secs());
        }
        assert_eq!(moves, 3600 / 180);
    }

    #[test]
    fn an_idle_user_or_a_jitter_moves_nothing_but_an_earlier_deadline_does() {
        let every = MOVE_EVERY;
        assert!(!needs_move(Some(1000), 1000, every));
        assert!(!needs_move(Some(1000), 1000 + 179, every));
        assert!(!needs_move(Some(1000), 996, every), "a clock jitter");
        assert!(needs_move(Some(1000), 1000 + 180, every));
        assert!(needs_move(Some(1000), 900, every), "a shorter timeout");
    }

    #[test]
    fn a_short_timeout_moves_more_often_so_it_never_fires_while_active() {
        let every = move_every(Duration::from_secs(6), Duration::ZERO);
        assert_eq!(every, Duration::from_secs(3));
    }

    #[test]
    fn names_identify_member_and_resource_within_aws_limits() {
        let m = member("my.laptop", "jo smith", 0xabc_def012);
        assert_eq!(m, "my_laptop-jo_smith-def012");
        assert_eq!(member("vm", "", 1), "vm-000001");
        assert_ne!(member("vm", "", 1), member("vm", "", 2), "installs apart");
        let long = member(&"h".repeat(80), "u", 7);
        assert_eq!(long.len(), 32);
        let ecs = ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1");
        let n = name(&m, &ecs);
        assert!(n.starts_with("my_laptop-jo_smith-def012.ecs."), "{n}");
        assert_eq!(n, name(&m, &ecs.clone()), "stable");
        let other = ResourceId::new(Kind::Ecs, ["cs", ""], "us-east-1");
        assert_ne!(n, name(&m, &other), "fields are kept apart");
        let cluster = ResourceId::new(Kind::RdsCluster, ["db"], "eu-west-1");
        let n = name(&long, &cluster);
        assert!(n.len() <= MAX_NAME, "{n}");
        assert!(n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn a_deadline_may_have_come_from_a_minute_before_it() {
        assert!(!may_have_come(None, 1000));
        assert!(!may_have_come(Some(1061), 1000));
        assert!(may_have_come(Some(1060), 1000));
        assert!(may_have_come(Some(500), 1000));
    }

    #[test]
    fn stale_schedules_are_this_members_that_are_not_wanted() {
        let m = member("h", "u", 1);
        let a = name(&m, &ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1"));
        let b = name(&m, &ResourceId::new(Kind::Ec2, ["i-2"], "us-east-1"));
        let theirs = name(
            &member("h", "u", 2),
            &ResourceId::new(Kind::Ec2, ["i-3"], "us-east-1"),
        );
        let found = vec![a.clone(), b.clone(), theirs];
        assert_eq!(
            stale(&m, &found, std::slice::from_ref(&a)),
            vec![b.as_str()]
        );
    }

    #[test]
    fn every_kind_sleeps_by_its_own_call() {
        let call = |kind, names: &[&str]| {
            schedule("m", &ResourceId::new(kind, names.to_vec(), "us-east-1"), 7).call
        };
        let ec2 = call(Kind::Ec2, &["i-1"]);
        assert_eq!(ec2.arn(), "arn:aws:scheduler:::aws-sdk:ec2:stopInstances");
        assert_eq!(ec2.input, json!({"InstanceIds": ["i-1"]}));
        let ecs = call(Kind::Ecs, &["c", "s"]);
        assert_eq!(ecs.arn(), "arn:aws:scheduler:::aws-sdk:ecs:updateService");
        assert_eq!(
            ecs.input,
            json!({"Cluster": "c", "Service": "s", "DesiredCount": 0})
        );
        let eks = call(Kind::Eks, &["c", "ng"]);
        assert_eq!(eks.action, "eks:updateNodegroupConfig");
        assert_eq!(
            eks.input,
            json!({"ClusterName": "c", "NodegroupName": "ng",
                   "ScalingConfig": {"MinSize": 0, "DesiredSize": 0}})
        );
        let asg = call(Kind::Asg, &["g"]);
        assert_eq!(asg.action, "autoscaling:updateAutoScalingGroup");
        assert_eq!(
            asg.input,
            json!({"AutoScalingGroupName": "g", "MinSize": 0, "DesiredCapacity": 0})
        );
        assert_eq!(call(Kind::Rds, &["db"]).action, "rds:stopDBInstance");
        assert_eq!(
            call(Kind::RdsCluster, &["cl"]).input,
            json!({"DbClusterIdentifier": "cl"})
        );
    }
}
