//! The X server's own idle time (MIT-SCREEN-SAVER extension): near free, and
//! it sees every input the server sees.

use super::{ActivitySource, DetectError, Sink};
use crate::core::activity::{idle_shows_input, ActivityKind};
use crate::core::settings::SystemIdleSettings;
use std::time::Duration;
use x11rb::connection::Connection;
use x11rb::protocol::screensaver::ConnectionExt as _;

/// Polls the X server's milliseconds since the last input.
pub struct SystemIdleSource {
    interval: Duration,
}

impl SystemIdleSource {
    pub fn new(settings: &SystemIdleSettings) -> Self {
        SystemIdleSource {
            interval: Duration::from_secs_f64(settings.check_interval_sec),
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new("system_idle", message)
}

impl ActivitySource for SystemIdleSource {
    fn name(&self) -> &'static str {
        "system_idle"
    }

    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let (conn, screen) = x11rb::connect(None).map_err(fail)?;
        let root = conn.setup().roots[screen].root;
        let idle_ms = || -> Result<u64, DetectError> {
            let reply = conn
                .screensaver_query_info(root)
                .map_err(fail)?
                .reply()
                .map_err(fail)?;
            Ok(u64::from(reply.ms_since_user_input))
        };
        let mut previous = Some(idle_ms()?);
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            let now = idle_ms()?;
            if idle_shows_input(previous, now, self.interval) {
                sink.emit(ActivityKind::SystemIdle);
            }
            previous = Some(now);
        }
        Ok(())
    }
}
