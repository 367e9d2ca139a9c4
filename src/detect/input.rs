//! Keyboard and mouse through `rdev`'s global listener (X RECORD on Linux).

use super::{ActivitySource, DetectError, Sink};
use crate::core::config::settings::{KeyboardSettings, MouseSettings};
use crate::core::model::activity::{ActivityKind, InputFilter};
use rdev::EventType;
use std::time::{Duration, Instant};

/// Key presses, mouse movement beyond a threshold, clicks and wheel turns.
pub struct InputSource {
    keyboard: KeyboardSettings,
    mouse: MouseSettings,
}

impl InputSource {
    pub fn new(keyboard: KeyboardSettings, mouse: MouseSettings) -> Self {
        InputSource { keyboard, mouse }
    }
}

impl ActivitySource for InputSource {
    fn name(&self) -> &'static str {
        "keyboard/mouse"
    }

    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let (kb, mouse) = (self.keyboard.enabled, self.mouse.enabled);
        let mut keys = InputFilter::new(Duration::from_millis(self.keyboard.debounce_ms), 0.0);
        let mut pointer = InputFilter::new(
            Duration::from_millis(self.mouse.debounce_ms),
            self.mouse.movement_threshold as f64,
        );
        rdev::listen(move |event| {
            let now = Instant::now();
            let kind = match event.event_type {
                EventType::KeyPress(_) if kb && keys.key(now) => ActivityKind::Keyboard,
                EventType::ButtonPress(_) | EventType::Wheel { .. }
                    if mouse && pointer.button(now) =>
                {
                    ActivityKind::Mouse
                }
                EventType::MouseMove { x, y } if mouse && pointer.mouse_move(now, x, y) => {
                    ActivityKind::Mouse
                }
                _ => return,
            };
            sink.emit(kind);
        })
        .map_err(|e| DetectError::new("keyboard/mouse", format!("cannot listen to input: {e:?}")))
    }
}
