//! Screen changes: every `capture_interval_sec`, a 160×100 grey frame of
//! the screen is compared with the previous one. On X11 the frame is sampled
//! straight from the server (100 one-row reads, never a full-resolution
//! copy) and only when the DAMAGE extension says something was drawn;
//! elsewhere (Wayland, Windows, macOS) it is an `xcap` capture, downscaled.
//! Skipped while other sources already show activity.

use super::definition::{
    Desktop, Detector, DetectorSettings, Field, Fit, Section, Session, SessionKind,
};
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::{changed_fraction, downscale_grey, ActivityKind};
use std::time::{Duration, Instant};

/// Screen changes.
pub static DETECTOR: Detector = Detector {
    name: "screen",
    input: false,
    fits,
    sections: &[&SECTION],
    make: Some(|s| Box::new(ScreenSource::new(s))),
};

/// X11; on Wayland only where xcap captures through wlroots' screencopy
/// (on GNOME and KDE it would go through the screenshot portal: a prompt or
/// a flash).
fn fits(session: &Session) -> Fit {
    match session.kind {
        SessionKind::X11 => Fit::Yes,
        SessionKind::Wayland if session.desktop == Desktop::Other => Fit::Partly,
        _ => Fit::No,
    }
}

const INTERVAL: Field = Field::number("capture_interval_sec", 10.0, 0.1, 3600.0);
/// Fraction (0..1) of the downscaled frame that must change.
const THRESHOLD: Field = Field::number("change_threshold", 0.01, 0.0, 1.0);

/// The `screen` section.
pub static SECTION: Section = Section {
    name: "screen",
    fields: &[INTERVAL, THRESHOLD],
};

/// Grey levels two pixels may differ by and still count as the same.
const TOLERANCE: u8 = 8;

/// Compares downscaled captures of the primary monitor.
pub struct ScreenSource {
    interval: Duration,
    threshold: f64,
}

impl ScreenSource {
    pub fn new(settings: &DetectorSettings) -> Self {
        let s = settings.of(&SECTION);
        ScreenSource {
            interval: Duration::from_secs_f64(s.get(&INTERVAL)),
            threshold: s.get(&THRESHOLD),
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new(DETECTOR.name, message)
}

impl ActivitySource for ScreenSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let grabber = Grabber::open()?;
        let mut previous: Option<Vec<u8>> = None;
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            if sink.active_within(self.interval) {
                previous = None; // the screen is expected to change; start afresh
                continue;
            }
            if previous.is_some() && !grabber.redrawn() {
                continue; // nothing was drawn: the frame is the same
            }
            let started = Instant::now();
            let frame = grabber.grab()?;
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

/// Where frames come from: on X11 the server itself, sampled row by row
/// (no full-resolution copy) and gated by DAMAGE; elsewhere an `xcap`
/// capture of the primary monitor.
enum Grabber {
    #[cfg(target_os = "linux")]
    X11(Box<x11::X11Screen>),
    Xcap(xcap::Monitor),
}

impl Grabber {
    fn open() -> Result<Self, DetectError> {
        #[cfg(target_os = "linux")]
        if let Some(x) = x11::X11Screen::connect() {
            return Ok(Grabber::X11(Box::new(x)));
        }
        let monitors = xcap::Monitor::all().map_err(fail)?;
        // Xvfb reports no primary monitor: fall back to the first.
        let monitor = monitors
            .iter()
            .find(|m| m.is_primary().unwrap_or(false))
            .or(monitors.first())
            .ok_or_else(|| fail("no monitor"))?;
        Ok(Grabber::Xcap(monitor.clone()))
    }

    /// Whether anything may have been drawn since the previous call.
    fn redrawn(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Grabber::X11(x) => x.redrawn(),
            Grabber::Xcap(_) => true,
        }
    }

    /// The screen as 160×100 grey levels.
    fn grab(&self) -> Result<Vec<u8>, DetectError> {
        match self {
            #[cfg(target_os = "linux")]
            Grabber::X11(x) => x.grab().map_err(fail),
            Grabber::Xcap(monitor) => {
                let image = monitor.capture_image().map_err(fail)?;
                Ok(downscale_grey(
                    image.as_raw(),
                    image.width(),
                    image.height(),
                    WIDTH,
                    HEIGHT,
                ))
            }
        }
    }
}

/// The size frames are compared at.
const WIDTH: u32 = 160;
const HEIGHT: u32 = 100;

#[cfg(target_os = "linux")]
mod x11 {
    use super::{HEIGHT, WIDTH};
    use x11rb::connection::Connection;
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder, Window};
    use x11rb::protocol::Event;
    use x11rb::rust_connection::RustConnection;

    /// The root window of an X server, watched with DAMAGE.
    pub struct X11Screen {
        conn: RustConnection,
        root: Window,
        width: u16,
        height: u16,
        damage: Option<u32>,
    }

    impl X11Screen {
        /// `None` where there is no X server, or its pixels are not 32-bit little-endian.
        pub fn connect() -> Option<Self> {
            let (conn, n) = x11rb::connect(None).ok()?;
            let screen = &conn.setup().roots[n];
            let (root, width, height) =
                (screen.root, screen.width_in_pixels, screen.height_in_pixels);
            let bpp = conn
                .setup()
                .pixmap_formats
                .iter()
                .find(|f| f.depth == screen.root_depth)?
                .bits_per_pixel;
            if bpp != 32 || conn.setup().image_byte_order != ImageOrder::LSB_FIRST {
                return None;
            }
            let damage = (|| {
                conn.damage_query_version(1, 1).ok()?.reply().ok()?;
                let id = conn.generate_id().ok()?;
                conn.damage_create(id, root, ReportLevel::NON_EMPTY).ok()?;
                conn.flush().ok()?;
                Some(id)
            })();
            Some(X11Screen {
                conn,
                root,
                width,
                height,
                damage,
            })
        }

        /// Whether anything was redrawn since the previous call (re-arms).
        pub fn redrawn(&self) -> bool {
            let Some(id) = self.damage else { return true };
            let mut redrawn = false;
            while let Ok(Some(event)) = self.conn.poll_for_event() {
                redrawn |= matches!(event, Event::DamageNotify(_));
            }
            if redrawn {
                let _ = self.conn.damage_subtract(id, x11rb::NONE, x11rb::NONE);
                let _ = self.conn.flush();
            }
            redrawn
        }

        /// Samples WIDTH×HEIGHT grey pixels: one 1-pixel-high GetImage per
        /// sampled row, all requests sent before the replies are read.
        pub fn grab(&self) -> Result<Vec<u8>, String> {
            let (w, h) = (u32::from(self.width), u32::from(self.height));
            let cookies = (0..HEIGHT)
                .map(|ty| {
                    let y = (ty * h / HEIGHT) as i16;
                    self.conn
                        .get_image(ImageFormat::Z_PIXMAP, self.root, 0, y, self.width, 1, !0)
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity((WIDTH * HEIGHT) as usize);
            for cookie in cookies {
                let row = cookie.reply().map_err(|e| e.to_string())?.data;
                for tx in 0..WIDTH {
                    let p = (tx * w / WIDTH) as usize * 4;
                    // 32-bit pixels are B, G, R, x in memory.
                    let (b, g, r) = match row.get(p..p + 3) {
                        Some(px) => (u32::from(px[0]), u32::from(px[1]), u32::from(px[2])),
                        None => (0, 0, 0),
                    };
                    out.push(((r * 77 + g * 150 + b * 29) >> 8) as u8);
                }
            }
            Ok(out)
        }
    }
}
