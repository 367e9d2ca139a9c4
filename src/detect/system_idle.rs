//! The session's own idle time: the X server's (MIT-SCREEN-SAVER extension)
//! on Linux, `GetLastInputInfo` on Windows. Near free, and it sees every
//! input the session sees.

use super::definition::{Detector, DetectorSettings, Field, Fit, Section, Session, SessionKind};

/// The session's idle time: X's on X11 (Xwayland has none), Windows' own.
pub static DETECTOR: Detector = Detector {
    name: "system_idle",
    input: true,
    fits: |session: &Session| match session.kind {
        SessionKind::X11 => Fit::Yes,
        _ => Fit::No,
    },
    sections: &[&SECTION],
    #[cfg(any(target_os = "linux", windows))]
    make: Some(|s| Box::new(imp::SystemIdleSource::new(&SystemIdleSettings::read(s)))),
    #[cfg(not(any(target_os = "linux", windows)))]
    make: None,
};

const INTERVAL: Field = Field::number("check_interval_sec", 10.0, 0.1, 3600.0);

/// The `system_idle` section, also read by the Wayland and GNOME idle
/// detectors.
pub static SECTION: Section = Section {
    name: "system_idle",
    fields: &[INTERVAL],
};

/// The `system_idle` section, read.
pub struct SystemIdleSettings {
    pub check_interval_sec: f64,
}

impl SystemIdleSettings {
    /// From the detector settings.
    pub fn read(settings: &DetectorSettings) -> Self {
        SystemIdleSettings {
            check_interval_sec: settings.of(&SECTION).get(&INTERVAL),
        }
    }
}

/// The source, where it can run.
#[cfg(any(target_os = "linux", windows))]
mod imp {
    use super::SystemIdleSettings;
    use crate::core::model::activity::{idle_shows_input, ActivityKind};
    use crate::detect::source::{ActivitySource, DetectError, Sink};
    use std::time::Duration;

    /// Polls the session's milliseconds since the last input.
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
        DetectError::new(super::DETECTOR.name, message)
    }

    impl ActivitySource for SystemIdleSource {
        fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
            let mut idle_ms = idle_clock()?;
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

    /// The X server's milliseconds since the last input.
    #[cfg(target_os = "linux")]
    fn idle_clock() -> Result<impl FnMut() -> Result<u64, DetectError>, DetectError> {
        use x11rb::connection::Connection;
        use x11rb::protocol::screensaver::ConnectionExt as _;
        let (conn, screen) = x11rb::connect(None).map_err(fail)?;
        let root = conn.setup().roots[screen].root;
        Ok(move || {
            let reply = conn
                .screensaver_query_info(root)
                .map_err(fail)?
                .reply()
                .map_err(fail)?;
            Ok(u64::from(reply.ms_since_user_input))
        })
    }

    /// Milliseconds since the session's last input (`GetLastInputInfo`).
    #[cfg(windows)]
    fn idle_clock() -> Result<impl FnMut() -> Result<u64, DetectError>, DetectError> {
        use windows_sys::Win32::System::SystemInformation::GetTickCount;
        use windows_sys::Win32::UI::Input::KeyboardAndMouse::{GetLastInputInfo, LASTINPUTINFO};
        Ok(|| {
            let mut info = LASTINPUTINFO {
                cbSize: std::mem::size_of::<LASTINPUTINFO>() as u32,
                dwTime: 0,
            };
            // SAFETY: `info` is a valid LASTINPUTINFO with its size set.
            if unsafe { GetLastInputInfo(&mut info) } == 0 {
                return Err(fail("GetLastInputInfo failed"));
            }
            // SAFETY: no arguments; the tick count wraps like `dwTime` does.
            let now = unsafe { GetTickCount() };
            Ok(u64::from(now.wrapping_sub(info.dwTime)))
        })
    }
}
