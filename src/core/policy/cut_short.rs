//! A sleep cut short by the user's return: what becomes of each resource
//! it had reached. Pure: the manager tells how far the sleep got with each
//! resource, this says how to put it back.
//!
//! The rule is fail safe: a resource whose stop call may have reached AWS
//! is taken as stopped and woken back from its record; one whose stop was
//! never sent, or refused, stays up and loses its tag and record.

/// How far a sleep got with one resource when the user came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Recorded as stopping; no call about it sent yet.
    Recorded,
    /// Its stop call was sent and AWS refused it: it was not stopped.
    StopRefused,
    /// Its stop call was sent and taken (or its answer is unknown).
    StopSent,
}

/// What putting one resource back takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Only its record goes: nothing was done to it.
    Forget,
    /// Its sleep tag goes, then its record: it never went down.
    Untag,
    /// Its saved capacity is restored, then tag and record go.
    Wake,
}

/// What a return does to a resource the sleep `reached`.
pub fn undo(reached: Reached) -> Undo {
    match reached {
        Reached::Recorded => Undo::Forget,
        Reached::StopRefused => Undo::Untag,
        Reached::StopSent => Undo::Wake,
    }
}

/// How far a sent stop call got: refused when AWS answered that it did
/// nothing, else taken (or unknown: a call that never got an answer may
/// still have stopped it).
pub fn after_stop(refused: bool) -> Reached {
    match refused {
        true => Reached::StopRefused,
        false => Reached::StopSent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_be_down_is_woken() {
        assert_eq!(undo(Reached::Recorded), Undo::Forget);
        assert_eq!(undo(Reached::StopRefused), Undo::Untag);
        assert_eq!(undo(Reached::StopSent), Undo::Wake);
    }

    #[test]
    fn a_stop_without_a_clear_refusal_counts_as_sent() {
        assert_eq!(undo(after_stop(false)), Undo::Wake);
        assert_eq!(undo(after_stop(true)), Undo::Untag);
    }
}
