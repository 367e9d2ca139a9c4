//! Keyboard and mouse through `rdev`'s global listener (X RECORD on Linux).

use super::definition::{x_clients, Detector, DetectorSettings, Field, Section, Values};
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::{ActivityKind, InputFilter};
use rdev::EventType;
use std::time::{Duration, Instant};

/// Keyboard and mouse: all input on X11, X clients' only through Xwayland.
pub static DETECTOR: Detector = Detector {
    name: "keyboard/mouse",
    input: true,
    fits: x_clients,
    sections: &[&KEYBOARD, &MOUSE],
    make: Some(|s| Box::new(InputSource::new(s))),
};

/// Key events closer together than this count once.
const DEBOUNCE: Field = Field::whole("debounce_ms", 100, 0, 60_000);
/// Movement smaller than this many pixels is ignored.
const MOVEMENT: Field = Field::whole("movement_threshold", 10, 0, 10_000);

/// The `keyboard` section.
pub static KEYBOARD: Section = Section {
    name: "keyboard",
    fields: &[DEBOUNCE],
};

/// The `mouse` section.
pub static MOUSE: Section = Section {
    name: "mouse",
    fields: &[DEBOUNCE, MOVEMENT],
};

/// Key presses, mouse movement beyond a threshold, clicks and wheel turns.
pub struct InputSource {
    keyboard: Values,
    mouse: Values,
}

impl InputSource {
    pub fn new(settings: &DetectorSettings) -> Self {
        InputSource {
            keyboard: settings.of(&KEYBOARD),
            mouse: settings.of(&MOUSE),
        }
    }
}

impl ActivitySource for InputSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let (kb, mouse) = (self.keyboard.enabled, self.mouse.enabled);
        let ms = |v: f64| Duration::from_millis(v as u64);
        let mut keys = InputFilter::new(ms(self.keyboard.get(&DEBOUNCE)), 0.0);
        let mut pointer =
            InputFilter::new(ms(self.mouse.get(&DEBOUNCE)), self.mouse.get(&MOVEMENT));
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
        .map_err(|e| DetectError::new(DETECTOR.name, format!("cannot listen to input: {e:?}")))
    }
}
