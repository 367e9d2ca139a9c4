//! Pure logic: domain types, configuration validation and the sleep/wake
//! policy. Nothing here touches the OS, the network or AWS.

pub mod config;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod savings;

/// FNV-1a of `bytes`: a hash that is the same on every build and machine
/// (unlike std's), for names that must stay stable.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
