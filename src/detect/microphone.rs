//! Calls and listening: a microphone in use (a PulseAudio or PipeWire-pulse
//! source output on a source that is not a monitor) shows the user is there.
//! Nothing is captured: the sound server's state is read over its native
//! protocol. The source subscribes to the server's source-output events, so
//! it costs nothing while nobody records; while a recording runs it reports
//! presence every `check_interval_sec`.

use super::definition::{everywhere, Detector, Field, Section};

/// A microphone in use, from the sound server's recordings (Linux).
pub static DETECTOR: Detector = Detector {
    name: "microphone",
    input: false,
    fits: everywhere,
    sections: &[&SECTION],
    #[cfg(target_os = "linux")]
    make: Some(|s| Box::new(imp::MicrophoneSource::new(s))),
    #[cfg(not(target_os = "linux"))]
    make: None,
};

/// How often presence is reported while a recording runs.
const INTERVAL: Field = Field::number("check_interval_sec", 5.0, 0.1, 3600.0);

/// The `microphone` section.
pub static SECTION: Section = Section {
    name: "microphone",
    fields: &[INTERVAL],
};

/// The source, where it can run.
#[cfg(target_os = "linux")]
mod imp {
    use super::{INTERVAL, SECTION};
    use crate::core::model::activity::{microphone_in_use, ActivityKind, Recording};
    use crate::detect::definition::DetectorSettings;
    use crate::detect::pulse::{Conn, IDLE_WAIT};
    use crate::detect::source::{ActivitySource, DetectError, Sink};
    use pulseaudio::protocol::{self, Command, SubscriptionMask};
    use std::time::Duration;

    /// Watches the sound server's recordings.
    pub struct MicrophoneSource {
        interval: Duration,
    }

    impl MicrophoneSource {
        pub fn new(settings: &DetectorSettings) -> Self {
            MicrophoneSource {
                interval: Duration::from_secs_f64(settings.of(&SECTION).get(&INTERVAL)),
            }
        }
    }

    /// Whether a microphone is recording now.
    fn recording_now(query: &mut Conn) -> Result<bool, DetectError> {
        let sources: protocol::SourceInfoList = query.request(Command::GetSourceInfoList)?;
        let outputs: protocol::SourceOutputInfoList =
            query.request(Command::GetSourceOutputInfoList)?;
        let monitors: Vec<u32> = sources
            .iter()
            .filter(|s| s.monitor_of_sink_index.is_some())
            .map(|s| s.index)
            .collect();
        let recordings: Vec<Recording> = outputs
            .iter()
            .map(|o| Recording {
                source: o.source_index,
                paused: o.corked,
            })
            .collect();
        Ok(microphone_in_use(&recordings, &monitors))
    }

    impl ActivitySource for MicrophoneSource {
        fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
            let name = super::DETECTOR.name;
            let mut events = Conn::connect(name)?;
            events.subscribe(SubscriptionMask::SOURCE_OUTPUT)?;
            let mut query = Conn::connect(name)?;
            let mut recording = recording_now(&mut query)?;
            while !sink.is_closed() {
                if recording {
                    sink.emit(ActivityKind::Microphone);
                }
                let wait = if recording { self.interval } else { IDLE_WAIT };
                // Every change of a recording (new, paused, moved, ended) is an
                // event: between events the answer cannot change.
                if events.event(wait)? {
                    recording = recording_now(&mut query)?;
                }
            }
            Ok(())
        }
    }
}
