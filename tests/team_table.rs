//! The team table of team mode (DynamoDB) through the library's adapter,
//! the real SDK and a real moto server: `team init` creates the table (on
//! demand, TTL) and accepts it the second time, and refuses a table with
//! other keys; of two members racing for a lock exactly one wins; a write
//! from a stale version is refused (a retried one is not); a presence lease
//! is judged by the table's clock, not by the skewed clocks of the members.

mod common;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use cloudnap::cloud::aws::dynamodb::{Init, InitError, TeamTable, Written};
use cloudnap::core::model::resource::{Capacity, Desired, Kind, ResourceId};
use cloudnap::core::policy::team::{present, step, Lock, Phase, State, Step};
use common::*;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const R: &str = "eu-north-1";
const A: &str = "arn:aws:iam::123456789012:user/dev-a@laptop-1";
const B: &str = "arn:aws:iam::123456789012:user/dev-b@laptop-2";

/// A new table (created by `init`) and its name.
async fn new_table() -> (TeamTable, String) {
    let name = unique("team");
    let table = TeamTable::from_conf(&sdk(R).await, &name);
    assert_eq!(table.init().await.unwrap(), Init::Created);
    (table, name)
}

fn service(name: &str) -> ResourceId {
    ResourceId::new(Kind::Ecs, ["shared", name], R)
}

/// The lock `me` takes to sleep `lock`'s resource with nobody present.
fn take_to_sleep(me: &str, lock: &Lock, now: SystemTime) -> Lock {
    match step(me, lock, &[], false, now) {
        Step::Take(l) if l.phase == Phase::Sleeping => l,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn init_creates_the_table_and_accepts_it_again_but_not_other_keys() {
    let (table, name) = new_table().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk(R).await);
    let described = ddb.describe_table().table_name(&name).send().await.unwrap();
    let t = described.table().unwrap();
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let keys: Vec<(&str, &KeyType)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(keys, [("pk", &KeyType::Hash), ("sk", &KeyType::Range)]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    // A second init (another member's) accepts it.
    assert_eq!(table.init().await.unwrap(), Init::Existed);

    // A table of that name with other keys is refused, naming them.
    let other = unique("not-team");
    ddb.create_table()
        .table_name(&other)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = TeamTable::from_conf(&sdk(R).await, &other)
        .init()
        .await
        .unwrap_err();
    assert!(matches!(err, InitError::WrongSchema { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("has the key schema id (N, HASH); cloudnap needs pk"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_members_racing_for_a_lock_exactly_one_wins() {
    let (a, name) = new_table().await;
    let b = TeamTable::from_conf(&sdk(R).await, &name);
    // Both are away (their leases running).
    let minute = Duration::from_secs(60);
    a.put_presence(A, State::Away, a.now(), &[], minute)
        .await
        .unwrap();
    b.put_presence(B, State::Away, b.now(), &[], minute)
        .await
        .unwrap();
    let team = a.presence().await.unwrap();
    assert_eq!(team.len(), 2);
    for round in 0..10 {
        let id = service(&format!("api-{round}"));
        // Both read the lock (none yet) and both find nobody present.
        let (la, lb) = tokio::join!(a.lock(&id), b.lock(&id));
        let (la, lb) = (la.unwrap(), lb.unwrap());
        assert_eq!(la.version, 0);
        let (ta, tb) = (
            take_to_sleep(A, &la, a.now()),
            take_to_sleep(B, &lb, b.now()),
        );
        let (wa, wb) = tokio::join!(a.put_lock(&ta), b.put_lock(&tb));
        let (wa, wb) = (wa.unwrap(), wb.unwrap());
        let (winner, loser_sees) = match (&wa, &wb) {
            (Written::Done, Written::Conflict(now)) => (A, now),
            (Written::Conflict(now), Written::Done) => (B, now),
            _ => panic!("round {round}: {wa:?} {wb:?}"),
        };
        assert_eq!(
            (
                loser_sees.version,
                loser_sees.phase,
                loser_sees.owner.as_str()
            ),
            (1, Phase::Sleeping, winner)
        );
        // The loser reports the winner's sleep.
        let loser = if winner == A { B } else { A };
        assert_eq!(
            step(loser, loser_sees, &team, false, a.now()),
            Step::DoneBy(winner.into())
        );
        assert_eq!(a.lock(&id).await.unwrap(), *loser_sees);
    }
    assert_eq!(a.locks().await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_version_is_refused_and_a_retried_write_is_not() {
    let (a, name) = new_table().await;
    let b = TeamTable::from_conf(&sdk(R).await, &name);
    let id = service("db");
    let taken = take_to_sleep(A, &Lock::none(id.clone()), a.now());
    assert_eq!(a.put_lock(&taken).await.unwrap(), Written::Done);
    let saved = Capacity::of(Kind::Ecs, Desired(3));
    let saving = taken.saving(A, saved, a.now());
    assert_eq!(a.put_lock(&saving).await.unwrap(), Written::Done);
    // The same write again (an SDK retry after a lost answer): done.
    assert_eq!(a.put_lock(&saving).await.unwrap(), Written::Done);

    // B still holds version 1: its write of version 2 is refused, and it
    // gets the lock as it is, with A's saved capacity.
    let stale = taken.release(B, b.now());
    let Written::Conflict(now) = b.put_lock(&stale).await.unwrap() else {
        panic!("a stale write went through")
    };
    assert_eq!(now, saving);
    assert_eq!(now.saved, Some(saved));

    // asleep, then asleep -> waking: only from the version read.
    let asleep = saving.asleep(A, a.now());
    assert_eq!(a.put_lock(&asleep).await.unwrap(), Written::Done);
    let back = [b
        .put_presence(B, State::Active, b.now(), &[], Duration::from_secs(60))
        .await
        .unwrap()];
    let Step::Take(waking) = step(B, &asleep, &back, false, b.now()) else {
        panic!()
    };
    assert_eq!((waking.phase, waking.saved), (Phase::Waking, Some(saved)));
    assert_eq!(b.put_lock(&waking).await.unwrap(), Written::Done);
    // A, waking from the asleep it read before, loses.
    let late = asleep.woken(A, a.now());
    assert!(matches!(a.put_lock(&late).await.unwrap(), Written::Conflict(l) if l == waking));
    assert_eq!(b.lock(&id).await.unwrap(), waking);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_is_judged_by_the_table_clock_not_the_members_clocks() {
    let (_, name) = new_table().await;
    let conf = sdk(R).await;
    let skewed = |secs: i64| -> Arc<dyn Fn() -> SystemTime + Send + Sync> {
        Arc::new(move || {
            let now = SystemTime::now();
            if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        })
    };
    // A's clock is 10 minutes fast, B's 5 minutes slow.
    let a = TeamTable::with_local_clock(&conf, &name, skewed(600));
    let b = TeamTable::with_local_clock(&conf, &name, skewed(-300));
    let lease = Duration::from_secs(3);

    let written = a
        .put_presence(A, State::Active, a.now(), &[], lease)
        .await
        .unwrap();
    // The lease ends 3 s after the write by the table's clock (moto's is
    // this machine's), not 10 minutes later.
    let off = |t: SystemTime, from: SystemTime| {
        t.duration_since(from)
            .unwrap_or_else(|e| e.duration())
            .as_secs_f64()
    };
    let expected = SystemTime::now() + lease;
    assert!(off(written.expires, expected) < 1.6, "{written:?}");

    let seen = b.presence().await.unwrap();
    assert_eq!(seen, std::slice::from_ref(&written));
    assert!(off(b.now(), SystemTime::now()) < 1.6);
    assert_eq!(present(&seen, b.now()).len(), 1, "A is present for B");
    // A second member's item, and the lease running out.
    b.put_presence(B, State::Away, b.now(), &[], Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(lease + Duration::from_millis(1600)).await;
    let seen = b.presence().await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        present(&seen, b.now()).is_empty(),
        "A's lease ran out by the table's clock: {seen:?}"
    );
    // A renewal makes it present again, for A's own view too.
    a.put_presence(A, State::Active, written.since, &[], lease)
        .await
        .unwrap();
    let seen = a.presence().await.unwrap();
    let here = present(&seen, a.now());
    assert_eq!(here.len(), 1);
    assert_eq!(here[0].member, A);
}
