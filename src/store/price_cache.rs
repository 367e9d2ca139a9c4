//! On-demand prices learnt from the AWS Price List API, kept 30 days in a
//! JSON file of the state directory so a known price needs no call.

use crate::store::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a cached price is used before it is asked again.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The cache file's usual name, next to `state.json`.
pub const FILE_NAME: &str = "price-cache.json";

/// The cache file beside the state file `state` (in the same directory).
pub fn beside(state: &Path) -> PathBuf {
    state.with_file_name(FILE_NAME)
}

/// One cached answer: USD per hour, or `None` when AWS lists no such product.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Entry {
    usd_per_hour: Option<f64>,
    /// When it was fetched, in seconds since the Unix epoch.
    fetched: u64,
}

/// Prices by query key, loaded from and saved to one file.
#[derive(Debug)]
pub struct PriceCache {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl PriceCache {
    /// The cache kept in `path`. A missing or unreadable file is an empty
    /// cache (it only saves calls).
    pub fn load(path: &Path) -> Self {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        PriceCache {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// The cached answer for `key` if it is younger than [`MAX_AGE`] at
    /// `now`: `Some(None)` means AWS listed no such product.
    pub fn get(&self, key: &str, now: SystemTime) -> Option<Option<f64>> {
        let e = self.entries.get(key)?;
        let age = secs(now).saturating_sub(e.fetched);
        // A time in the future (clock set back) counts as fresh.
        (age < MAX_AGE.as_secs()).then_some(e.usd_per_hour)
    }

    /// Records the answer for `key` fetched at `now`, drops expired entries,
    /// and writes the file atomically.
    pub fn put(&mut self, key: &str, usd_per_hour: Option<f64>, now: SystemTime) -> io::Result<()> {
        let fetched = secs(now);
        self.entries
            .retain(|_, e| fetched.saturating_sub(e.fetched) < MAX_AGE.as_secs());
        self.entries.insert(
            key.to_string(),
            Entry {
                usd_per_hour,
                fetched,
            },
        );
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(&self.entries).map_err(io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_survive_a_reload_and_expire_after_30_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut cache = PriceCache::load(&path);
        assert_eq!(cache.get("k", t0), None);
        cache.put("k", Some(0.0104), t0).unwrap();
        cache.put("none", None, t0).unwrap();

        let cache = PriceCache::load(&path);
        assert_eq!(cache.get("k", t0), Some(Some(0.0104)));
        assert_eq!(cache.get("none", t0), Some(None));
        let later = t0 + MAX_AGE - Duration::from_secs(1);
        assert_eq!(cache.get("k", later), Some(Some(0.0104)));
        assert_eq!(cache.get("k", t0 + MAX_AGE), None);
    }

    #[test]
    fn a_corrupt_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{not json").unwrap();
        let mut cache = PriceCache::load(&path);
        assert_eq!(cache.get("k", SystemTime::now()), None);
        cache.put("k", Some(1.0), SystemTime::now()).unwrap();
        assert_eq!(
            PriceCache::load(&path).get("k", SystemTime::now()),
            Some(Some(1.0))
        );
    }
}
