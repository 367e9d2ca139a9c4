//! Screen changes through `xcap`: capture every `capture_interval_sec`,
//! downscale to 160×100 grey, compare with the previous frame. Skipped while
//! other sources already show activity.

use super::{ActivitySource, DetectError, Sink};
use crate::core::activity::{changed_fraction, downscale_grey, ActivityKind};
use crate::core::settings::ScreenSettings;
use std::time::{Duration, Instant};

/// Grey levels two pixels may differ by and still count as the same.
const TOLERANCE: u8 = 8;

/// Compares downscaled captures of the primary monitor.
pub struct ScreenSource {
    interval: Duration,
    threshold: f64,
}

impl ScreenSource {
    pub fn new(settings: &ScreenSettings) -> Self {
        ScreenSource {
            interval: Duration::from_secs_f64(settings.capture_interval_sec),
            threshold: settings.change_threshold,
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError {
        source_name: "screen",
        message: message.to_string(),
    }
}

impl ActivitySource for ScreenSource {
    fn name(&self) -> &'static str {
        "screen"
    }

    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let monitors = xcap::Monitor::all().map_err(fail)?;
        // Xvfb reports no primary monitor: fall back to the first.
        let monitor = monitors
            .iter()
            .find(|m| m.is_primary().unwrap_or(false))
            .or(monitors.first())
            .ok_or_else(|| fail("no monitor"))?;
        let mut previous: Option<Vec<u8>> = None;
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            if sink.active_within(self.interval) {
                previous = None; // the screen is expected to change; start afresh
                continue;
            }
            let started = Instant::now();
            let image = monitor.capture_image().map_err(fail)?;
            let frame = downscale_grey(image.as_raw(), image.width(), image.height(), 160, 100);
            tracing::debug!("screen check took {} µs", started.elapsed().as_micros());
            if let Some(prev) = &previous {
                if changed_fraction(prev, &frame, TOLERANCE) > self.threshold {
                    sink.emit(ActivityKind::Screen);
                }
            }
            previous = Some(frame);
        }
        Ok(())
    }
}
