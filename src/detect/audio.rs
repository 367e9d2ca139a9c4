//! Sound playing on the default output: captures the output's monitor source
//! (never a microphone) and counts an RMS level above `volume_threshold`.
//! The capture runs only while the sound server says the default output is
//! playing (PulseAudio sink state `RUNNING`, asked again only when the
//! server reports a sink or server change: nothing runs while nothing
//! plays) and no other source already shows activity.

use super::definition::{everywhere, Detector, DetectorSettings, Field, Section};
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::{rms, ActivityKind};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sound playing, in any session.
pub static DETECTOR: Detector = Detector {
    name: "audio",
    input: false,
    fits: everywhere,
    sections: &[&SECTION],
    make: Some(|s| Box::new(AudioSource::new(s))),
};

const INTERVAL: Field = Field::number("check_interval_sec", 5.0, 0.1, 3600.0);
/// RMS level (0..1) of the output above which sound counts as playing.
const THRESHOLD: Field = Field::number("volume_threshold", 0.01, 0.0, 1.0);

/// The `audio` section.
pub static SECTION: Section = Section {
    name: "audio",
    fields: &[INTERVAL, THRESHOLD],
};

/// Listens to what the default output plays.
pub struct AudioSource {
    interval: Duration,
    threshold: f32,
}

impl AudioSource {
    pub fn new(settings: &DetectorSettings) -> Self {
        let s = settings.of(&SECTION);
        AudioSource {
            interval: Duration::from_secs_f64(s.get(&INTERVAL)),
            threshold: s.get(&THRESHOLD) as f32,
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new(DETECTOR.name, message)
}

/// The monitor source of the default output device (PulseAudio names it
/// `<sink>.monitor`), captured as one channel at 8 kHz (the server
/// converts).
#[cfg(not(windows))]
fn output_monitor() -> Result<(cpal::Device, cpal::StreamConfig), DetectError> {
    let host = cpal::default_host();
    let output = host
        .default_output_device()
        .ok_or_else(|| fail("no default output device"))?;
    let sink = output.id().map_err(fail)?;
    let monitor = format!("{}.monitor", sink.id());
    let device = host
        .input_devices()
        .map_err(fail)?
        .find(|d| d.id().is_ok_and(|id| id.id() == monitor))
        .ok_or_else(|| {
            fail(format!(
                "no monitor source `{monitor}` for the default output (is PulseAudio or PipeWire's pulse server running?)"
            ))
        })?;
    let config = cpal::StreamConfig {
        channels: 1,
        sample_rate: 8_000,
        buffer_size: cpal::BufferSize::Default,
    };
    Ok((device, config))
}

/// The default output device itself, in its own format: cpal's WASAPI
/// backend captures an output device in loopback mode (what it plays,
/// never a microphone).
#[cfg(windows)]
fn output_monitor() -> Result<(cpal::Device, cpal::StreamConfig), DetectError> {
    let device = cpal::default_host()
        .default_output_device()
        .ok_or_else(|| fail("no default output device"))?;
    let config = device.default_output_config().map_err(fail)?.config();
    Ok((device, config))
}

impl ActivitySource for AudioSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let (device, config) = output_monitor()?;
        // The loudest buffer since the last check, as f32 bits.
        let peak = Arc::new(AtomicU32::new(0));
        let mut server = SoundServer::connect();
        // The capture stream exists only while wanted: an idle one still costs.
        let mut stream: Option<cpal::Stream> = None;
        while !sink.is_closed() {
            // Cannot tell: listen.
            let playing = server.as_ref().is_none_or(|s| s.playing);
            if !playing || sink.active_within(self.interval) {
                stream = None;
            } else if stream.is_none() {
                let level = peak.clone();
                let s = device
                    .build_input_stream(
                        config,
                        move |data: &[f32], _: &cpal::InputCallbackInfo| {
                            level.fetch_max(rms(data).to_bits(), Ordering::Relaxed);
                        },
                        |e| tracing::warn!("audio detector: {e}"),
                        None,
                    )
                    .map_err(fail)?;
                s.play().map_err(fail)?;
                stream = Some(s);
            }
            // While something plays, a look each interval; while nothing
            // does, nothing until the sound server says otherwise.
            match &mut server {
                Some(server) if !playing => server.wait(IDLE_WAIT)?,
                Some(server) => server.wait(self.interval)?,
                None => std::thread::sleep(self.interval),
            }
            // Non-negative f32 bits order like the floats themselves.
            let loudest = f32::from_bits(peak.swap(0, Ordering::Relaxed));
            if stream.is_some() && loudest > self.threshold {
                sink.emit(ActivityKind::Audio);
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
use super::pulse::IDLE_WAIT;
#[cfg(not(target_os = "linux"))]
const IDLE_WAIT: Duration = Duration::from_secs(30);

/// The sound server's view of the default output: whether it plays, kept
/// up to date from the server's sink and server events (PulseAudio or
/// PipeWire-pulse), asked again only when one comes.
#[cfg(target_os = "linux")]
struct SoundServer {
    events: super::pulse::Conn,
    query: super::pulse::Conn,
    playing: bool,
}

#[cfg(target_os = "linux")]
impl SoundServer {
    fn connect() -> Option<Self> {
        use pulseaudio::protocol::SubscriptionMask;
        let connect = || super::pulse::Conn::connect(DETECTOR.name);
        let mut events = connect().ok()?;
        events
            .subscribe(SubscriptionMask::SINK | SubscriptionMask::SERVER)
            .ok()?;
        let mut query = connect().ok()?;
        let playing = Self::output_playing(&mut query).ok()?;
        Some(SoundServer {
            events,
            query,
            playing,
        })
    }

    /// Whether something is playing into the default output now.
    fn output_playing(query: &mut super::pulse::Conn) -> Result<bool, DetectError> {
        use pulseaudio::protocol::{self, Command, GetSinkInfo, SinkState};
        let info: protocol::ServerInfo = query.request(Command::GetServerInfo)?;
        let Some(name) = info.default_sink_name else {
            return Ok(false);
        };
        let sink: protocol::SinkInfo = query.request(Command::GetSinkInfo(GetSinkInfo {
            index: None,
            name: Some(name),
        }))?;
        Ok(sink.state == SinkState::Running)
    }

    /// Waits up to `wait` for the server to say something changed, and
    /// then asks again.
    fn wait(&mut self, wait: Duration) -> Result<(), DetectError> {
        if self.events.event(wait)? {
            self.playing = Self::output_playing(&mut self.query)?;
        }
        Ok(())
    }
}

/// Elsewhere the capture itself is the only signal.
#[cfg(not(target_os = "linux"))]
#[allow(dead_code)]
struct SoundServer {
    playing: bool,
}

#[cfg(not(target_os = "linux"))]
#[allow(dead_code)]
impl SoundServer {
    fn connect() -> Option<Self> {
        None
    }

    fn wait(&mut self, wait: Duration) -> Result<(), DetectError> {
        std::thread::sleep(wait);
        Ok(())
    }
}
