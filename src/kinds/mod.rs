//! Every kind of resource cloudnap puts to sleep, one folder each:
//! `<kind>/mod.rs` holds its pure [`Spec`] (services.yaml section and names,
//! capacity shape, commands, ARN and tag format, deadline call, busy metrics,
//! listing) and `<kind>/aws.rs` its AWS adapter (an [`adapter::KindAdapter`]).
//! The one list of kinds is [`for_each_kind`]: a new kind is its folder and
//! one line there (see docs/architecture.md).

pub mod adapter;
pub mod asg;
pub mod aws;
pub mod ec2;
pub mod ecs;
pub mod eks;
pub mod listing;
pub mod rds;
pub mod redshift;
pub mod sagemaker;
pub mod spec;
pub mod workspaces;

use serde::{Deserialize, Serialize};
pub use spec::{Batch, Metric, NameField, Reduce, Shape, SleepCall, Spec, Tagged};
use std::fmt;

/// The one list of kinds, in the order of services.yaml, the command tables
/// and listings: `Variant: folder::ITEM;`, where `folder::ITEM` is the kind's
/// [`Spec`] and `folder::aws::ITEM` its adapter. Calls `$then!` with it.
macro_rules! for_each_kind {
    ($then:ident) => {
        $then! {
            /// An EC2 instance.
            Ec2: ec2::EC2;
            /// An ECS service.
            Ecs: ecs::ECS;
            /// An EKS managed nodegroup.
            Eks: eks::EKS;
            /// An EC2 Auto Scaling group.
            Asg: asg::ASG;
            /// An RDS DB instance.
            Rds: rds::INSTANCE;
            /// An Aurora DB cluster.
            RdsCluster: rds::CLUSTER;
            /// A SageMaker notebook instance.
            SagemakerNotebook: sagemaker::NOTEBOOK;
            /// A Redshift provisioned cluster.
            RedshiftCluster: redshift::CLUSTER;
            /// An Amazon WorkSpace.
            Workspace: workspaces::WORKSPACE;
        }
    };
}
pub(crate) use for_each_kind;

/// [`Kind`], [`Kind::ALL`] and [`Kind::spec`] from the list.
macro_rules! define_kinds {
    ($($(#[$doc:meta])* $variant:ident: $folder:ident::$item:ident;)*) => {
        /// The kinds of resource cloudnap can put to sleep.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in the order of services.yaml, the command tables and listings.
            pub const ALL: [Kind; [$(stringify!($variant)),*].len()] = [$(Kind::$variant),*];

            /// What this kind is.
            pub fn spec(self) -> &'static Spec {
                match self {
                    $(Kind::$variant => &$folder::$item,)*
                }
            }
        }
    };
}
for_each_kind!(define_kinds);

impl Kind {
    /// The kind whose label (`EC2`) this is, in any case.
    pub fn from_label(label: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.spec().label.eq_ignore_ascii_case(label))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_serialized_as_its_label() {
        for kind in Kind::ALL {
            let label = kind.spec().label;
            assert_eq!(serde_json::to_value(kind).unwrap(), label);
            assert_eq!(Kind::from_label(&label.to_lowercase()), Some(kind));
            assert_eq!(serde_json::from_value::<Kind>(label.into()).unwrap(), kind);
        }
    }
}
