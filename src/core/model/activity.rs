//! Pure pieces of the activity detectors: what counts as activity, decided
//! from raw readings and a `now` passed in.

use serde::Serialize;
use std::time::{Duration, Instant};

/// What kind of activity was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Keyboard,
    Mouse,
    Screen,
    Window,
    /// Sound playing on the output: keeps awake, but is a weaker signal
    /// than presence (see [`Self::is_presence`]).
    Audio,
    /// A microphone in use (a call, a recording): the user is there.
    Microphone,
    /// The OS's own idle time went down: some input happened.
    SystemIdle,
    /// A `USER_ACTIVITY` command or a similar explicit signal.
    Command,
    /// The Wayland compositor's idle notification (`ext_idle_notify_v1` or
    /// `org_kde_kwin_idle`): input on the seat.
    WaylandIdle,
    /// GNOME's `org.gnome.Mutter.IdleMonitor` (or the desktop's
    /// `org.freedesktop.ScreenSaver` idle time): input in the session.
    GnomeIdle,
    /// The screen was unlocked: the user is back (counts as activity).
    Unlocked,
    /// The machine resumed from suspend: the user opened it.
    Resumed,
    /// The screen was locked. Not activity: the orchestrator is to start
    /// its short lock grace countdown instead (see [`Self::is_activity`]).
    Locked,
}

impl ActivityKind {
    /// The name used in settings, logs and STATUS.
    pub fn name(self) -> &'static str {
        match self {
            ActivityKind::Keyboard => "keyboard",
            ActivityKind::Mouse => "mouse",
            ActivityKind::Screen => "screen",
            ActivityKind::Window => "window",
            ActivityKind::Audio => "audio",
            ActivityKind::Microphone => "microphone",
            ActivityKind::SystemIdle => "system_idle",
            ActivityKind::Command => "command",
            ActivityKind::WaylandIdle => "wayland_idle",
            ActivityKind::GnomeIdle => "gnome_idle",
            ActivityKind::Unlocked => "unlocked",
            ActivityKind::Resumed => "resumed",
            ActivityKind::Locked => "locked",
        }
    }

    /// Whether this shows the user is here. Only [`ActivityKind::Locked`]
    /// does not: it must never reset the idle countdown.
    pub fn is_activity(self) -> bool {
        self != ActivityKind::Locked
    }

    /// Whether this is the user's own input (keys, pointer, the session's
    /// idle time, a command, an unlock, opening the laptop): what an idle
    /// inhibitor's limit counts from. Sound, the screen, windows and the
    /// microphone can change with nobody at the keyboard.
    pub fn is_input(self) -> bool {
        matches!(
            self,
            ActivityKind::Keyboard
                | ActivityKind::Mouse
                | ActivityKind::SystemIdle
                | ActivityKind::Command
                | ActivityKind::WaylandIdle
                | ActivityKind::GnomeIdle
                | ActivityKind::Unlocked
                | ActivityKind::Resumed
        )
    }

    /// Whether this shows the user is there, like input. Sound playing does
    /// not (a video or music may play to an empty room): it keeps resources
    /// awake all the same, and STATUS shows it as the weaker signal.
    pub fn is_presence(self) -> bool {
        self.is_activity() && self != ActivityKind::Audio
    }
}

/// A recording stream of the sound server (a source output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    /// The source it records from.
    pub source: u32,
    /// Corked: open but not capturing.
    pub paused: bool,
}

/// Whether a microphone is in use: a recording that is not paused, from a
/// source that is not the monitor of an output (`monitors`: their indexes).
pub fn microphone_in_use(recordings: &[Recording], monitors: &[u32]) -> bool {
    recordings
        .iter()
        .any(|r| !r.paused && !monitors.contains(&r.source))
}

/// One observation of activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub kind: ActivityKind,
    pub at: Instant,
}

/// Debounces key and button events and ignores mouse movement below a
/// distance threshold (a twitchy mouse must not keep resources awake).
#[derive(Debug, Clone)]
pub struct InputFilter {
    debounce: Duration,
    threshold: f64,
    last_key: Option<Instant>,
    last_mouse: Option<Instant>,
    /// Where the pointer was when movement last counted.
    anchor: Option<(f64, f64)>,
}

impl InputFilter {
    /// A filter with the given debounce and movement threshold (pixels).
    pub fn new(debounce: Duration, threshold: f64) -> Self {
        InputFilter {
            debounce,
            threshold,
            last_key: None,
            last_mouse: None,
            anchor: None,
        }
    }

    fn debounced(last: &mut Option<Instant>, now: Instant, debounce: Duration) -> bool {
        let due = last.is_none_or(|t| now.saturating_duration_since(t) >= debounce);
        if due {
            *last = Some(now);
        }
        due
    }

    /// A key press: counts unless one counted within the debounce time.
    pub fn key(&mut self, now: Instant) -> bool {
        Self::debounced(&mut self.last_key, now, self.debounce)
    }

    /// A button press or wheel turn.
    pub fn button(&mut self, now: Instant) -> bool {
        Self::debounced(&mut self.last_mouse, now, self.debounce)
    }

    /// The pointer moved to (x, y): counts once it is `threshold` pixels
    /// away from where movement last counted (the first position only sets
    /// the anchor).
    pub fn mouse_move(&mut self, now: Instant, x: f64, y: f64) -> bool {
        let Some((ax, ay)) = self.anchor else {
            self.anchor = Some((x, y));
            return false;
        };
        if ((x - ax).powi(2) + (y - ay).powi(2)).sqrt() < self.threshold {
            return false;
        }
        self.anchor = Some((x, y));
        Self::debounced(&mut self.last_mouse, now, self.debounce)
    }
}

/// Whether the OS idle time (ms since the last input) shows input since the
/// previous reading, `interval` ago.
pub fn idle_shows_input(previous_ms: Option<u64>, now_ms: u64, interval: Duration) -> bool {
    match previous_ms {
        Some(prev) => now_ms < prev || now_ms < interval.as_millis() as u64,
        None => false,
    }
}

/// Root-mean-square level of samples in -1..1.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

/// Nearest-neighbour downscale of an RGBA frame to `tw`×`th` grey levels.
pub fn downscale_grey(rgba: &[u8], w: u32, h: u32, tw: u32, th: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((tw * th) as usize);
    if w == 0 || h == 0 || rgba.len() < (w * h * 4) as usize {
        return out;
    }
    for ty in 0..th {
        let y = (ty * h / th) as usize;
        for tx in 0..tw {
            let x = (tx * w / tw) as usize;
            let p = (y * w as usize + x) * 4;
            let (r, g, b) = (rgba[p] as u32, rgba[p + 1] as u32, rgba[p + 2] as u32);
            out.push(((r * 77 + g * 150 + b * 29) >> 8) as u8);
        }
    }
    out
}

/// The fraction (0..1) of pixels that differ by more than `tolerance`
/// grey levels; frames of different sizes count as entirely changed.
pub fn changed_fraction(a: &[u8], b: &[u8], tolerance: u8) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 1.0;
    }
    let changed = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > tolerance)
        .count();
    changed as f64 / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_not_activity_but_an_unlock_is() {
        assert!(!ActivityKind::Locked.is_activity());
        assert!(ActivityKind::Unlocked.is_activity());
        assert!(ActivityKind::WaylandIdle.is_activity());
        assert_eq!(ActivityKind::Locked.name(), "locked");
    }

    #[test]
    fn only_a_live_recording_of_a_non_monitor_source_is_a_microphone_in_use() {
        let rec = |source, paused| Recording { source, paused };
        let monitors = [1, 3];
        assert!(!microphone_in_use(&[], &monitors));
        assert!(
            !microphone_in_use(&[rec(1, false)], &monitors),
            "what plays"
        );
        assert!(!microphone_in_use(&[rec(2, true)], &monitors), "paused");
        assert!(microphone_in_use(
            &[rec(1, false), rec(2, false)],
            &monitors
        ));
        assert!(ActivityKind::Microphone.is_presence());
        assert!(!ActivityKind::Audio.is_presence() && ActivityKind::Audio.is_activity());
        assert!(!ActivityKind::Locked.is_presence());
    }

    #[test]
    fn keys_are_debounced() {
        let t0 = Instant::now();
        let mut f = InputFilter::new(Duration::from_millis(100), 10.0);
        assert!(f.key(t0));
        assert!(!f.key(t0 + Duration::from_millis(50)));
        assert!(f.key(t0 + Duration::from_millis(150)));
    }

    #[test]
    fn small_mouse_movements_do_not_count() {
        let t0 = Instant::now();
        let mut f = InputFilter::new(Duration::ZERO, 10.0);
        assert!(
            !f.mouse_move(t0, 100.0, 100.0),
            "first position is the anchor"
        );
        assert!(!f.mouse_move(t0, 103.0, 104.0), "5 px jiggle");
        assert!(!f.mouse_move(t0, 98.0, 97.0));
        assert!(f.mouse_move(t0, 110.0, 100.0), "10 px away");
        assert!(!f.mouse_move(t0, 112.0, 101.0), "anchor moved with it");
        assert!(f.button(t0));
    }

    #[test]
    fn idle_time_going_down_means_input() {
        let i = Duration::from_secs(10);
        assert!(!idle_shows_input(None, 50, i));
        assert!(
            idle_shows_input(Some(30_000), 2_000, i),
            "reset since last poll"
        );
        assert!(!idle_shows_input(Some(30_000), 40_000, i), "still idle");
        assert!(
            idle_shows_input(Some(3_000), 5_000, i),
            "input within the interval"
        );
    }

    #[test]
    fn frame_comparison() {
        let a = vec![10u8; 100];
        let mut b = a.clone();
        assert_eq!(changed_fraction(&a, &b, 8), 0.0);
        b[..5].fill(200);
        assert_eq!(changed_fraction(&a, &b, 8), 0.05);
        b[50] = 15; // within tolerance
        assert_eq!(changed_fraction(&a, &b, 8), 0.05);
        assert_eq!(changed_fraction(&a, &[], 8), 1.0);
    }

    #[test]
    fn downscale_samples_the_grid() {
        // 4x2 RGBA: left half black, right half white.
        let mut img = Vec::new();
        for _y in 0..2 {
            for x in 0..4 {
                let v = if x < 2 { 0 } else { 255 };
                img.extend([v, v, v, 255]);
            }
        }
        assert_eq!(downscale_grey(&img, 4, 2, 2, 1), vec![0, 255]);
    }

    #[test]
    fn rms_of_silence_and_a_tone() {
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(rms(&[0.0; 64]), 0.0);
        let tone: Vec<f32> = (0..480).map(|i| (i as f32 * 0.0576).sin() * 0.5).collect();
        assert!((rms(&tone) - 0.3535).abs() < 0.01);
    }
}
