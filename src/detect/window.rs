//! The focused window, polled: a change of window (app, process, window id
//! or title) is activity; the same window staying focused is not.

use super::definition::{x_clients, Detector, DetectorSettings, Field, Section};
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::ActivityKind;
use std::time::Duration;

/// The focused window: every window on X11, X clients' only through
/// Xwayland.
pub static DETECTOR: Detector = Detector {
    name: "window",
    input: false,
    fits: x_clients,
    sections: &[&SECTION],
    make: Some(|s| Box::new(WindowSource::new(s))),
};

const INTERVAL: Field = Field::number("check_interval_sec", 2.0, 0.1, 3600.0);

/// The `window` section.
pub static SECTION: Section = Section {
    name: "window",
    fields: &[INTERVAL],
};

/// Polls the active window.
pub struct WindowSource {
    interval: Duration,
}

impl WindowSource {
    pub fn new(settings: &DetectorSettings) -> Self {
        WindowSource {
            interval: Duration::from_secs_f64(settings.of(&SECTION).get(&INTERVAL)),
        }
    }
}

/// What identifies a focused window.
fn focused() -> Option<(String, u64, String, String)> {
    active_win_pos_rs::get_active_window()
        .ok()
        .map(|w| (w.app_name, w.process_id, w.window_id, w.title))
}

impl ActivitySource for WindowSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let mut last = focused();
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            let now = focused();
            if now.is_some() && now != last {
                sink.emit(ActivityKind::Window);
            }
            last = now;
        }
        Ok(())
    }
}
