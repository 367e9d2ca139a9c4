//! The detectors, written once, in the order they are probed, shown in
//! `STATUS` and named in logs: the compositor's or desktop's own idle time
//! first (where it fits, the best witness of input), then the rest.
//!
//! A new detector: its file in `src/detect/` holding its
//! `pub static DETECTOR: Detector` and its source, `mod` it in
//! `detect/mod.rs`, and add one line here. The session plan, the settings
//! sections (inside `activity_monitor` or at the top level), `STATUS` and
//! the restart rule follow from this list.

use super::definition::{Detector, DetectorSettings, Section};
use super::{audio, inhibitors, input, lock, microphone, power, screen, system_idle, window};
#[cfg(target_os = "linux")]
use super::{gnome, wayland};

/// Every detector, in order.
pub static DETECTORS: &[&Detector] = &[
    #[cfg(target_os = "linux")]
    &wayland::DETECTOR,
    #[cfg(target_os = "linux")]
    &gnome::DETECTOR,
    &input::DETECTOR,
    &screen::DETECTOR,
    &audio::DETECTOR,
    &window::DETECTOR,
    &microphone::DETECTOR,
    &system_idle::DETECTOR,
    &lock::DETECTOR,
    &inhibitors::DETECTOR,
    &power::DETECTOR,
];

/// Every detector settings section, once each, in the list's order.
pub fn sections() -> Vec<&'static Section> {
    let mut out: Vec<&'static Section> = Vec::new();
    for section in DETECTORS.iter().flat_map(|d| d.sections.iter()) {
        if !out.iter().any(|s| s.name == section.name) {
            out.push(section);
        }
    }
    out
}

/// The detectors that a change from `old` to `new` reaches only when
/// cloudnap restarts.
pub fn needing_restart(old: &DetectorSettings, new: &DetectorSettings) -> Vec<&'static Detector> {
    DETECTORS
        .iter()
        .copied()
        .filter(|d| d.needs_restart(old, new))
        .collect()
}

/// The detector named `name` (as `STATUS` shows it).
pub fn by_name(name: &str) -> Option<&'static Detector> {
    DETECTORS.iter().copied().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::settings::Settings;

    fn detectors(json: &str) -> DetectorSettings {
        let (settings, warnings) = Settings::parse(json).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        settings.detectors
    }

    #[test]
    fn names_and_sections_are_unique() {
        for (i, d) in DETECTORS.iter().enumerate() {
            assert_eq!(by_name(d.name), Some(*d), "{}", d.name);
            assert!(
                DETECTORS[..i].iter().all(|e| e.name != d.name),
                "{}",
                d.name
            );
        }
        let names: Vec<&str> = sections().iter().map(|s| s.name).collect();
        for name in [
            "keyboard",
            "mouse",
            "screen",
            "audio",
            "window",
            "microphone",
            "system_idle",
            "screen_lock",
            "inhibitors",
            "power",
        ] {
            assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{names:?}");
        }
        assert_eq!(by_name("nope"), None);
    }

    #[test]
    fn a_change_to_a_section_restarts_the_detectors_reading_it_and_no_other() {
        let base = detectors("{}");
        let changed = |json| needing_restart(&base, &detectors(json));
        assert_eq!(
            changed(r#"{"screen":{"capture_interval_sec":3}}"#),
            vec![&screen::DETECTOR]
        );
        assert_eq!(
            changed(r#"{"activity_monitor":{"audio":{"enabled":false}}}"#),
            vec![&audio::DETECTOR]
        );
        // Either of the input detector's two sections.
        assert_eq!(
            changed(r#"{"mouse":{"movement_threshold":50}}"#),
            vec![&input::DETECTOR]
        );
        assert_eq!(
            changed(r#"{"power":{"enabled":false}}"#),
            vec![&power::DETECTOR]
        );
        // Graces apply at once; nothing to restart.
        assert!(changed(r#"{"screen_lock":{"lock_grace_minutes":5}}"#).is_empty());
        assert!(changed(r#"{"power":{"suspend_grace_minutes":1}}"#).is_empty());
        assert!(changed(r#"{"activity_monitor":{"warning_minutes":1}}"#).is_empty());
        assert_eq!(
            changed(r#"{"screen_lock":{"enabled":false}}"#),
            vec![&lock::DETECTOR]
        );
    }

    #[test]
    fn every_section_of_the_list_is_read_in_both_places_with_its_defaults() {
        for section in sections() {
            let name = section.name;
            for json in [
                format!(r#"{{"activity_monitor":{{"{name}":{{"enabled":false}}}}}}"#),
                format!(r#"{{"{name}":{{"enabled":false}}}}"#),
            ] {
                let values = detectors(&json).of(section);
                assert!(!values.enabled, "{json}");
                for f in section.fields {
                    assert_eq!(values.get(f), f.default, "{name}.{}", f.key);
                }
                // Every detector reading it is off unless another of its
                // sections keeps it on.
                for d in DETECTORS.iter().filter(|d| d.sections.len() == 1) {
                    let reads = d.sections[0].name == name;
                    assert_eq!(d.enabled(&detectors(&json)), !reads, "{}: {json}", d.name);
                }
            }
            let out_of_range = format!(
                r#"{{"activity_monitor":{{"{name}":{{"{}":-1}}}}}}"#,
                section.fields[0].key
            );
            let err = Settings::parse(&out_of_range).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "`activity_monitor.{name}.{}`",
                    section.fields[0].key
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_detector_is_on_while_any_of_its_sections_is() {
        let only_mouse = detectors(r#"{"keyboard":{"enabled":false}}"#);
        assert!(input::DETECTOR.enabled(&only_mouse));
        let neither = detectors(r#"{"keyboard":{"enabled":false},"mouse":{"enabled":false}}"#);
        assert!(!input::DETECTOR.enabled(&neither));
        assert!(screen::DETECTOR.enabled(&neither));
    }
}
