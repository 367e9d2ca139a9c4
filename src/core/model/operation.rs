//! What cloudnap is doing to the resources as a whole.

use serde::Serialize;

/// A sleep or wake in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Sleeping,
    Waking,
}

impl Operation {
    /// `sleeping` or `waking`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Sleeping => "sleeping",
            Operation::Waking => "waking",
        }
    }

    /// What the resources are once it is done: `asleep` or `awake`.
    pub fn done(self) -> &'static str {
        match self {
            Operation::Sleeping => "asleep",
            Operation::Waking => "awake",
        }
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
