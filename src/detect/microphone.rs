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
    use crate::detect::source::{ActivitySource, DetectError, Sink};
    use pulseaudio::protocol::{self, Command, CommandReply, SubscriptionMask};
    use std::io::{BufRead, BufReader, ErrorKind};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// How long to wait for an event while nobody records before looking
    /// whether cloudnap is shutting down.
    const IDLE_WAIT: Duration = Duration::from_secs(30);

    /// The most a message may take to arrive once its first bytes have.
    const MESSAGE_WAIT: Duration = Duration::from_secs(5);

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

    fn fail(message: impl std::fmt::Display) -> DetectError {
        DetectError::new(super::DETECTOR.name, message)
    }

    /// One connection to the sound server, authenticated and named.
    struct Conn {
        sock: BufReader<UnixStream>,
        version: u16,
        seq: u32,
    }

    impl Conn {
        fn connect() -> Result<Conn, DetectError> {
            let path = pulseaudio::socket_path_from_env().ok_or_else(|| {
                fail("no PulseAudio or PipeWire-pulse socket (is a sound server running?)")
            })?;
            let stream =
                UnixStream::connect(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            stream.set_read_timeout(Some(MESSAGE_WAIT)).map_err(fail)?;
            let mut conn = Conn {
                sock: BufReader::new(stream),
                version: protocol::MAX_VERSION,
                seq: 0,
            };
            let cookie = pulseaudio::cookie_path_from_env()
                .and_then(|p| std::fs::read(p).ok())
                .unwrap_or_default();
            let auth: protocol::AuthReply = conn.request(Command::Auth(protocol::AuthParams {
                version: protocol::MAX_VERSION,
                supports_shm: false,
                supports_memfd: false,
                cookie,
            }))?;
            conn.version = auth.version.min(protocol::MAX_VERSION);
            let mut props = protocol::Props::new();
            props.set(protocol::Prop::ApplicationName, c"cloudnap");
            let _: protocol::SetClientNameReply = conn.request(Command::SetClientName(props))?;
            Ok(conn)
        }

        fn send(&mut self, command: &Command) -> Result<(), DetectError> {
            self.seq += 1;
            protocol::write_command_message(self.sock.get_mut(), self.seq, command, self.version)
                .map_err(fail)
        }

        fn request<R: CommandReply>(&mut self, command: Command) -> Result<R, DetectError> {
            self.send(&command)?;
            let (_, reply) =
                protocol::read_reply_message(&mut self.sock, self.version).map_err(fail)?;
            Ok(reply)
        }

        /// Asks for source-output events on this connection.
        fn subscribe(&mut self) -> Result<(), DetectError> {
            self.send(&Command::Subscribe(SubscriptionMask::SOURCE_OUTPUT))?;
            protocol::read_ack_message(&mut self.sock).map_err(fail)?;
            Ok(())
        }

        /// Waits up to `wait` for an event; whether one came.
        fn event(&mut self, wait: Duration) -> Result<bool, DetectError> {
            if self.sock.buffer().is_empty() {
                self.sock
                    .get_ref()
                    .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                    .map_err(fail)?;
                let filled = self.sock.fill_buf().map(<[u8]>::len);
                self.sock
                    .get_ref()
                    .set_read_timeout(Some(MESSAGE_WAIT))
                    .map_err(fail)?;
                match filled {
                    Ok(0) => return Err(fail("the sound server closed the connection")),
                    Ok(_) => {}
                    // A signal cut the wait short (a read with a timeout is
                    // not restarted): nothing came.
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) =>
                    {
                        return Ok(false)
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            protocol::read_command_message(&mut self.sock, self.version).map_err(fail)?;
            Ok(true)
        }

        /// Whether a microphone is recording now.
        fn recording(&mut self) -> Result<bool, DetectError> {
            let sources: protocol::SourceInfoList = self.request(Command::GetSourceInfoList)?;
            let outputs: protocol::SourceOutputInfoList =
                self.request(Command::GetSourceOutputInfoList)?;
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
    }

    impl ActivitySource for MicrophoneSource {
        fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
            let mut events = Conn::connect()?;
            events.subscribe()?;
            let mut query = Conn::connect()?;
            let mut recording = query.recording()?;
            while !sink.is_closed() {
                if recording {
                    sink.emit(ActivityKind::Microphone);
                }
                let wait = if recording { self.interval } else { IDLE_WAIT };
                // Every change of a recording (new, paused, moved, ended) is an
                // event: between events the answer cannot change.
                if events.event(wait)? {
                    recording = query.recording()?;
                }
            }
            Ok(())
        }
    }
}
