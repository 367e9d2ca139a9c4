//! The focused window, polled: a change of window (app, process, window id
//! or title) is activity; the same window staying focused is not.

use super::{ActivitySource, DetectError, Sink};
use crate::core::config::settings::WindowSettings;
use crate::core::model::activity::ActivityKind;
use std::time::Duration;

/// Polls the active window.
pub struct WindowSource {
    interval: Duration,
}

impl WindowSource {
    pub fn new(settings: &WindowSettings) -> Self {
        WindowSource {
            interval: Duration::from_secs_f64(settings.check_interval_sec),
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
    fn name(&self) -> &'static str {
        "window"
    }

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
