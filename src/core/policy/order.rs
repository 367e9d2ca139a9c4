//! A policy per resource (services.yaml's `wake:` and `after:`): which
//! resources a wake brings back, and in what order a wake starts them and a
//! sleep stops them. Pure: resource ids and names in, decisions out.

use crate::core::model::history::Trigger;
use crate::core::model::resource::ResourceId;
use std::collections::{BTreeMap, BTreeSet};

/// What may wake a resource cloudnap put to sleep (`wake:` in services.yaml).
/// Every policy sleeps the same way; only the wake differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum WakePolicy {
    /// Woken by the user's return, as everything else (the default).
    #[default]
    Auto,
    /// Woken only by hand: `WAKE_NOW`, the tray's wake, a hold, or a
    /// command naming it (`START_*`, `HOLD` with `only`).
    Manual,
    /// Woken only by a request naming it: `cloudnap ssh-proxy`, `HOLD` with
    /// `only`, `START_*`. Neither the return nor `WAKE_NOW` wakes it.
    OnConnect,
}

/// How a wake of everything was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// By the user's return or on their behalf: activity, a resume, the
    /// pre-wake, team mode, the end of a hold.
    Return,
    /// By hand, for everything: `WAKE_NOW`, the tray, a hold on everything.
    ByHand,
}

impl Asked {
    /// How a wake with `trigger` was asked for.
    pub fn of(trigger: Trigger) -> Asked {
        match trigger {
            Trigger::Command | Trigger::Tray => Asked::ByHand,
            _ => Asked::Return,
        }
    }
}

impl WakePolicy {
    /// Every policy, in the order of [`Self::name`]'s words.
    pub const ALL: [WakePolicy; 3] = [WakePolicy::Auto, WakePolicy::Manual, WakePolicy::OnConnect];

    /// Its word in services.yaml and replies: `auto`, `manual`, `on_connect`.
    pub fn name(self) -> &'static str {
        match self {
            WakePolicy::Auto => "auto",
            WakePolicy::Manual => "manual",
            WakePolicy::OnConnect => "on_connect",
        }
    }

    /// The policy named `word`, if any.
    pub fn parse(word: &str) -> Option<WakePolicy> {
        Self::ALL.into_iter().find(|p| p.name() == word)
    }

    /// Whether a wake of everything asked for as `asked` wakes a resource
    /// of this policy. (A request naming the resource always does: it does
    /// not come through here.)
    pub fn wakes(self, asked: Asked) -> bool {
        match self {
            WakePolicy::Auto => true,
            WakePolicy::Manual => asked == Asked::ByHand,
            WakePolicy::OnConnect => false,
        }
    }
}

/// Why the `after:` fields cannot be used; each message names the resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// `after` names no registered resource.
    #[error("{resource}: after `{after}`: no registered resource has that name")]
    Unknown { resource: String, after: String },
    /// `after` names several.
    #[error("{resource}: after `{after}` names {count} registered resources: write its id, e.g. `EC2 i-0abc (us-east-1)`")]
    Ambiguous {
        resource: String,
        after: String,
        count: usize,
    },
    /// `after` names the resource itself.
    #[error("{resource}: after itself")]
    Itself { resource: String },
    /// The `after` fields go round.
    #[error("after: a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Whether `name` (from `after:` or `hold --only`) names `id`: its name
/// (`i-0abc`, `cluster/service`) or its id as `STATUS` prints it.
pub fn names(id: &ResourceId, name: &str) -> bool {
    id.name() == name || id.to_string() == name
}

/// The resource each `after:` of `entries` (an id and its `after`, if any)
/// names: `None` where there is no `after`. Errors for names that match no
/// resource, several, or the resource itself.
pub fn resolve(
    entries: &[(ResourceId, Option<String>)],
) -> Result<Vec<Option<ResourceId>>, Vec<OrderError>> {
    let mut errors = Vec::new();
    let resolved = entries
        .iter()
        .map(|(id, after)| {
            let after = after.as_ref()?;
            let found: Vec<&ResourceId> = (entries.iter().map(|(i, _)| i))
                .filter(|i| names(i, after))
                .collect();
            let resource = id.to_string();
            match found.as_slice() {
                [one] if *one == id => errors.push(OrderError::Itself { resource }),
                [one] => return Some((*one).clone()),
                [] => errors.push(OrderError::Unknown {
                    resource,
                    after: after.clone(),
                }),
                many => errors.push(OrderError::Ambiguous {
                    resource,
                    after: after.clone(),
                    count: many.len(),
                }),
            }
            None
        })
        .collect();
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// The start order of `items` (a resource and the one it starts after):
/// stages, each started once the previous ones are; a resource is in the
/// stage after the one it starts after. An `after` outside `items` does
/// not order anything (it is not part of this wake). A sleep stops the
/// stages in reverse. Ids within a stage keep the order of `items`.
pub fn stages(
    items: &[(ResourceId, Option<ResourceId>)],
) -> Result<Vec<Vec<ResourceId>>, OrderError> {
    let present: BTreeSet<&ResourceId> = items.iter().map(|(id, _)| id).collect();
    let before: BTreeMap<&ResourceId, &ResourceId> = (items.iter())
        .filter_map(|(id, after)| Some((id, after.as_ref().filter(|a| present.contains(a))?)))
        .collect();
    let mut depth: BTreeMap<&ResourceId, usize> = BTreeMap::new();
    for (id, _) in items {
        // Walk up the chain; more steps than resources is a cycle.
        let mut chain = vec![id];
        while let Some(next) = before.get(chain[chain.len() - 1]) {
            if let Some(at) = chain.iter().position(|c| c == next) {
                let mut cycle: Vec<String> = chain[at..].iter().map(|c| c.to_string()).collect();
                cycle.push(next.to_string());
                return Err(OrderError::Cycle(cycle));
            }
            chain.push(next);
        }
        depth.insert(id, chain.len() - 1);
    }
    let count = depth.values().max().map_or(0, |d| d + 1);
    let mut out = vec![Vec::new(); count];
    for (id, _) in items {
        out[depth[id]].push(id.clone());
    }
    Ok(out)
}

/// The resources of `stage` waits for before it starts: what it starts
/// after, among `started` (what the earlier stages did start).
pub fn waits_for(
    stage: &[ResourceId],
    items: &[(ResourceId, Option<ResourceId>)],
    started: &[ResourceId],
) -> Vec<ResourceId> {
    let mut out: Vec<ResourceId> = (items.iter())
        .filter(|(id, _)| stage.contains(id))
        .filter_map(|(_, after)| after.clone())
        .filter(|a| started.contains(a))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a sleep leaves up because something that starts after it is still
/// up (`up`: what the later stages left running): each with the first such
/// resource, for the report. Stopping it would pull it out from under a
/// resource that needs it.
pub fn needed_by(
    stage: &[ResourceId],
    items: &[(ResourceId, Option<ResourceId>)],
    up: &[ResourceId],
) -> Vec<(ResourceId, ResourceId)> {
    stage
        .iter()
        .filter_map(|id| {
            let user = (items.iter())
                .find(|(user, after)| after.as_ref() == Some(id) && up.contains(user))?;
            Some((id.clone(), user.0.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;
    use std::slice::from_ref;

    fn ec2(n: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [format!("i-{n}")], "us-east-1")
    }

    fn svc(n: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c".to_string(), n.to_string()], "us-east-1")
    }

    #[test]
    fn which_policies_a_wake_of_everything_wakes() {
        let woken = |asked| -> Vec<&str> {
            (WakePolicy::ALL.into_iter())
                .filter(|p| p.wakes(asked))
                .map(WakePolicy::name)
                .collect()
        };
        for t in [
            Trigger::Idle,
            Trigger::Resume,
            Trigger::PreWake,
            Trigger::Team,
            Trigger::HoldEnded,
            Trigger::Refresh,
        ] {
            assert_eq!(Asked::of(t), Asked::Return, "{t:?}");
        }
        assert_eq!(woken(Asked::of(Trigger::Idle)), ["auto"]);
        assert_eq!(woken(Asked::of(Trigger::Command)), ["auto", "manual"]);
        assert_eq!(woken(Asked::of(Trigger::Tray)), ["auto", "manual"]);
        assert_eq!(WakePolicy::default(), WakePolicy::Auto);
        for p in WakePolicy::ALL {
            assert_eq!(WakePolicy::parse(p.name()), Some(p));
        }
        assert_eq!(WakePolicy::parse("onconnect"), None);
    }

    #[test]
    fn after_names_a_resource_by_name_or_id_and_bad_names_are_refused() {
        let (db, api, web) = (ec2("db"), svc("api"), svc("web"));
        let entries = vec![
            (db.clone(), None),
            (api.clone(), Some("i-db".to_string())),
            (web.clone(), Some(api.to_string())),
        ];
        assert_eq!(
            resolve(&entries).unwrap(),
            [None, Some(db.clone()), Some(api.clone())]
        );
        let twin = ResourceId::new(Kind::Ec2, ["i-db"], "eu-west-1");
        let bad = vec![
            (db.clone(), Some("nope".to_string())),
            (api.clone(), Some("c/api".to_string())),
            (web.clone(), Some("i-db".to_string())),
            (twin, None),
        ];
        let errors: Vec<String> = (resolve(&bad).unwrap_err().iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "EC2 i-db (us-east-1): after `nope`: no registered resource has that name",
                "ECS c/api (us-east-1): after itself",
                "ECS c/web (us-east-1): after `i-db` names 2 registered resources: write its id, e.g. `EC2 i-0abc (us-east-1)`",
            ]
        );
    }

    #[test]
    fn stages_follow_the_chain_and_ignore_what_is_not_woken() {
        let (db, api, web, other) = (ec2("db"), svc("api"), svc("web"), svc("other"));
        let items = vec![
            (web.clone(), Some(api.clone())),
            (api.clone(), Some(db.clone())),
            (other.clone(), None),
            (db.clone(), None),
        ];
        assert_eq!(
            stages(&items).unwrap(),
            [
                vec![other.clone(), db.clone()],
                vec![api.clone()],
                vec![web.clone()]
            ]
        );
        // db is not part of this wake: api does not wait.
        let without_db = vec![
            (web.clone(), Some(api.clone())),
            (api.clone(), Some(db.clone())),
        ];
        assert_eq!(
            stages(&without_db).unwrap(),
            [vec![api.clone()], vec![web.clone()]]
        );
        assert_eq!(stages(&[]).unwrap(), Vec::<Vec<ResourceId>>::new());
        // What stage 1 waits for: db, if the wake started it.
        assert_eq!(
            waits_for(from_ref(&api), &items, &[other.clone(), db.clone()]),
            from_ref(&db)
        );
        assert!(waits_for(from_ref(&api), &items, from_ref(&other)).is_empty());
    }

    #[test]
    fn a_cycle_is_refused_naming_its_resources() {
        let (a, b, c) = (svc("a"), svc("b"), svc("c"));
        let items = vec![
            (a.clone(), Some(c.clone())),
            (b.clone(), Some(a.clone())),
            (c.clone(), Some(b.clone())),
        ];
        assert_eq!(
            stages(&items).unwrap_err().to_string(),
            "after: a cycle: ECS c/a (us-east-1) -> ECS c/c (us-east-1) -> ECS c/b (us-east-1) -> ECS c/a (us-east-1)"
        );
    }

    #[test]
    fn a_sleep_leaves_up_what_a_running_resource_starts_after() {
        let (db, api, web) = (ec2("db"), svc("api"), svc("web"));
        let items = vec![
            (db.clone(), None),
            (api.clone(), Some(db.clone())),
            (web.clone(), None),
        ];
        assert_eq!(
            needed_by(&[db.clone(), web.clone()], &items, from_ref(&api)),
            [(db.clone(), api.clone())]
        );
        assert!(needed_by(from_ref(&db), &items, from_ref(&web)).is_empty());
    }
}
