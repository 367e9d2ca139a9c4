//! One connection to the PulseAudio (or PipeWire-pulse) server over its
//! native protocol, for the detectors that ask it (audio, microphone):
//! authenticated and named, with replies read in place and events waited
//! for with a timeout, so a detector costs nothing between events.

use crate::detect::source::DetectError;
use pulseaudio::protocol::{self, Command, CommandReply, SubscriptionMask};
use std::io::{BufRead, BufReader, ErrorKind};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long to wait for an event while nothing happens before looking
/// whether cloudnap is shutting down.
pub const IDLE_WAIT: Duration = Duration::from_secs(30);

/// The most a message may take to arrive once its first bytes have.
const MESSAGE_WAIT: Duration = Duration::from_secs(5);

/// One connection to the sound server, authenticated and named.
pub struct Conn {
    /// The detector it is for, named in its errors.
    detector: &'static str,
    sock: BufReader<UnixStream>,
    version: u16,
    seq: u32,
}

impl Conn {
    /// A new connection for `detector`.
    pub fn connect(detector: &'static str) -> Result<Conn, DetectError> {
        let fail = |m: String| DetectError::new(detector, m);
        let path = pulseaudio::socket_path_from_env().ok_or_else(|| {
            fail("no PulseAudio or PipeWire-pulse socket (is a sound server running?)".into())
        })?;
        let stream =
            UnixStream::connect(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        (stream.set_read_timeout(Some(MESSAGE_WAIT))).map_err(|e| fail(e.to_string()))?;
        let mut conn = Conn {
            detector,
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
            .map_err(|e| self.fail(e))
    }

    /// Sends `command` and reads its reply.
    pub fn request<R: CommandReply>(&mut self, command: Command) -> Result<R, DetectError> {
        self.send(&command)?;
        let (_, reply) =
            protocol::read_reply_message(&mut self.sock, self.version).map_err(|e| self.fail(e))?;
        Ok(reply)
    }

    /// Asks for the events of `mask` on this connection.
    pub fn subscribe(&mut self, mask: SubscriptionMask) -> Result<(), DetectError> {
        self.send(&Command::Subscribe(mask))?;
        protocol::read_ack_message(&mut self.sock).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Waits up to `wait` for an event; whether one came.
    pub fn event(&mut self, wait: Duration) -> Result<bool, DetectError> {
        if self.sock.buffer().is_empty() {
            self.sock
                .get_ref()
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(|e| self.fail(e))?;
            let filled = self.sock.fill_buf().map(<[u8]>::len);
            self.sock
                .get_ref()
                .set_read_timeout(Some(MESSAGE_WAIT))
                .map_err(|e| self.fail(e))?;
            match filled {
                Ok(0) => return Err(self.fail("the sound server closed the connection")),
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
                Err(e) => return Err(self.fail(e)),
            }
        }
        protocol::read_command_message(&mut self.sock, self.version).map_err(|e| self.fail(e))?;
        Ok(true)
    }

    fn fail(&self, message: impl std::fmt::Display) -> DetectError {
        DetectError::new(self.detector, message)
    }
}
