//! The tray icon and its menu. On Linux tray-icon publishes a
//! StatusNotifierItem over D-Bus (its `ksni` backend, no GTK); the desktop's
//! tray host draws the icon and the menu. On Windows tray-icon's native
//! backend (`Shell_NotifyIcon`) runs on a winit event loop of its own
//! thread, which also wakes once a second to follow the status.

use crate::core::protocol::status::Status;
#[cfg(any(target_os = "linux", windows, test))]
use crate::ui::view::IconState;
#[cfg(any(target_os = "linux", windows))]
use crate::ui::view::{tray_view, unchanged_for, TrayView};
use std::sync::Arc;

/// What a menu item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    SleepNow,
    WakeNow,
    /// Hold everything for an hour.
    KeepAwakeHour,
    /// Hold everything until 18:00.
    KeepAwakeUntilEvening,
    /// Hold everything until the next 08:00.
    KeepAwakeUntilMorning,
    Resume,
    OpenServices,
    OpenLog,
    Credentials,
    /// The SSO sign-in (device authorization in the browser).
    SignIn,
    Quit,
}

/// Menu entries in order: id, label, action (`None`: a separator).
const ITEMS: [Option<(&str, &str, MenuAction)>; 13] = [
    Some(("sleep", "Sleep now", MenuAction::SleepNow)),
    Some(("wake", "Wake now", MenuAction::WakeNow)),
    None,
    Some(("keep-awake-1h", "Keep awake 1 h", MenuAction::KeepAwakeHour)),
    Some((
        "keep-awake-evening",
        "Keep awake until 18:00",
        MenuAction::KeepAwakeUntilEvening,
    )),
    Some((
        "keep-awake-morning",
        "Keep awake until tomorrow 08:00",
        MenuAction::KeepAwakeUntilMorning,
    )),
    Some(("resume", "Resume", MenuAction::Resume)),
    None,
    Some((
        "open-services",
        "Open services.yaml",
        MenuAction::OpenServices,
    )),
    Some(("open-log", "Open log", MenuAction::OpenLog)),
    Some(("credentials", "AWS credentials…", MenuAction::Credentials)),
    Some(("sign-in", "Sign in (SSO)…", MenuAction::SignIn)),
    Some(("quit", "Quit", MenuAction::Quit)),
];

/// The action of a menu id (also the key of a notification's button).
pub fn action_for(id: &str) -> Option<MenuAction> {
    ITEMS
        .iter()
        .flatten()
        .find(|(i, _, _)| *i == id)
        .map(|(_, _, a)| *a)
}

/// The app's current STATUS, for the status line.
pub type StatusFn = Arc<dyn Fn() -> Status + Send + Sync>;

/// A message each time the app's state changed (any number at once).
pub type Changes = std::sync::mpsc::Receiver<()>;

/// The least time between two looks at the status (typing changes the
/// state at every key).
#[cfg(target_os = "linux")]
const LOOK_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// The PNG icon for `state`, from `assets/`.
#[cfg(any(target_os = "linux", windows, test))]
fn icon_png(state: IconState) -> &'static [u8] {
    match state {
        IconState::Active => include_bytes!("../../assets/active.png"),
        IconState::Warning => include_bytes!("../../assets/warning.png"),
        IconState::Asleep => include_bytes!("../../assets/asleep.png"),
        IconState::Paused => include_bytes!("../../assets/paused.png"),
        IconState::Error => include_bytes!("../../assets/error.png"),
    }
}

#[cfg(any(target_os = "linux", windows))]
fn icon(state: IconState) -> Result<tray_icon::Icon, String> {
    let img = image::load_from_memory_with_format(icon_png(state), image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", state.file()))?
        .into_rgba8();
    let (w, h) = img.dimensions();
    tray_icon::Icon::from_rgba(img.into_raw(), w, h).map_err(|e| e.to_string())
}

/// Starts the tray on its own thread. Menu choices are passed to `act`
/// (from tray-icon's D-Bus thread on Linux, the tray thread on Windows);
/// the status line and icon follow `status`, looked at when `changes` says
/// the state changed (at most once a second) and when what the line shows
/// turns by itself (a countdown), redrawn only when they change. Returns
/// once the icon is published, or why it cannot be.
#[cfg(any(target_os = "linux", windows))]
pub fn spawn(
    status: StatusFn,
    changes: Changes,
    act: impl Fn(MenuAction) + Send + Sync + 'static,
) -> Result<(), String> {
    tray_icon::menu::MenuEvent::set_event_handler(Some(move |e: tray_icon::menu::MenuEvent| {
        if let Some(a) = action_for(&e.id.0) {
            act(a);
        }
    }));
    // Clicks on the icon itself: the host opens the menu on right click;
    // handled here so they are not queued forever.
    tray_icon::TrayIconEvent::set_event_handler(Some(|e: tray_icon::TrayIconEvent| {
        tracing::debug!("tray icon: {e:?}");
    }));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tray".into())
        .spawn(move || serve(status, changes, ready_tx))
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|_| "the tray thread stopped".to_string())?
}

/// Whether the tray could be shown, sent once by the tray thread.
#[cfg(any(target_os = "linux", windows))]
type Ready = std::sync::mpsc::Sender<Result<(), String>>;

/// Builds the icon and says on `ready` whether that worked.
#[cfg(any(target_os = "linux", windows))]
fn publish(status: &StatusFn, ready: &Ready) -> Option<Shown> {
    let built = build(status);
    let _ = ready.send(built.as_ref().map(|_| ()).map_err(Clone::clone));
    built.ok()
}

/// Linux: the icon, then a look at the status after each change of state
/// (at most once a second) and when its line turns by itself, forever
/// (tray-icon's D-Bus thread serves the host). A redraw, and the host's
/// reads of what changed, run code that nothing else idle runs (the menu's
/// and the D-Bus messages' building, about 3.5 MB of the binary at the
/// kernel's 64 kB a fault): [`AFTER_REDRAW`] after the last redraw it is
/// given back ([`crate::memory::release`]).
#[cfg(target_os = "linux")]
fn serve(status: StatusFn, changes: Changes, ready: Ready) {
    use std::time::Instant;
    let Some(mut shown) = publish(&status, &ready) else {
        return;
    };
    let mut give_back: Option<Instant> = None;
    loop {
        std::thread::sleep(LOOK_GAP);
        let mut wait = shown.calm.saturating_sub(LOOK_GAP);
        if let Some(at) = give_back {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        let _ = changes.recv_timeout(wait);
        while changes.try_recv().is_ok() {}
        if shown.follow(&status) {
            give_back = Some(Instant::now() + AFTER_REDRAW);
        } else if give_back.is_some_and(|at| Instant::now() >= at) && !shown.busy {
            // (Not while a sleep or wake runs: its code would fault back in.)
            give_back = None;
            let kb = crate::memory::release();
            tracing::debug!("tray redrawn: {kb} kB given back");
        }
    }
}

/// How long after a redraw the host is done reading it.
#[cfg(target_os = "linux")]
const AFTER_REDRAW: std::time::Duration = std::time::Duration::from_secs(3);

/// Windows: a winit event loop on this (non-main) thread, the icon built
/// on it (its window's messages come to this thread), then the loop,
/// waking once a second to follow the status.
#[cfg(windows)]
fn serve(status: StatusFn, _changes: Changes, ready: Ready) {
    use std::time::{Duration, Instant};
    use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
    use winit::platform::windows::EventLoopBuilderExtWindows;

    struct Follow(Shown, StatusFn);
    impl winit::application::ApplicationHandler for Follow {
        fn new_events(&mut self, el: &ActiveEventLoop, _: winit::event::StartCause) {
            self.0.follow(&self.1);
            el.set_control_flow(ControlFlow::WaitUntil(
                Instant::now() + Duration::from_secs(1),
            ));
        }
        fn resumed(&mut self, _: &ActiveEventLoop) {}
        fn window_event(
            &mut self,
            _: &ActiveEventLoop,
            _: winit::window::WindowId,
            _: winit::event::WindowEvent,
        ) {
        }
    }
    let event_loop = match EventLoop::builder().with_any_thread(true).build() {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    if let Some(shown) = publish(&status, &ready) {
        if let Err(e) = event_loop.run_app(&mut Follow(shown, status)) {
            tracing::warn!("the tray's event loop ended: {e}");
        }
    }
}

/// The published icon and what it shows.
#[cfg(any(target_os = "linux", windows))]
struct Shown {
    tray: tray_icon::TrayIcon,
    line: tray_icon::menu::MenuItem,
    icons: Vec<(IconState, tray_icon::Icon)>,
    view: TrayView,
    /// How long the view stays as it is unless the state changes.
    #[cfg_attr(windows, allow(dead_code))]
    calm: std::time::Duration,
    /// Whether a sleep or wake was running at the last look.
    #[cfg_attr(windows, allow(dead_code))]
    busy: bool,
}

/// The icon for `state` among the decoded ones.
#[cfg(any(target_os = "linux", windows))]
fn pick(icons: &[(IconState, tray_icon::Icon)], state: IconState) -> Option<tray_icon::Icon> {
    icons
        .iter()
        .find(|(s, _)| *s == state)
        .map(|(_, i)| i.clone())
}

#[cfg(any(target_os = "linux", windows))]
impl Shown {
    /// Redraws what changed since the last look at `status`; whether
    /// anything did.
    fn follow(&mut self, status: &StatusFn) -> bool {
        let status = status();
        self.calm = unchanged_for(&status);
        self.busy = status.operation.is_some();
        let view = tray_view(&status);
        if view == self.view {
            return false;
        }
        if view.icon != self.view.icon {
            let _ = self.tray.set_icon(pick(&self.icons, view.icon));
        }
        self.line.set_text(&view.line);
        let _ = self.tray.set_tooltip(Some(&view.line));
        self.view = view;
        true
    }
}

#[cfg(any(target_os = "linux", windows))]
fn build(status: &StatusFn) -> Result<Shown, String> {
    use tray_icon::menu::{Menu, MenuItem, PredefinedMenuItem};
    let menu = Menu::new();
    let status = status();
    let first = tray_view(&status);
    let line = MenuItem::with_id("status", &first.line, false, None);
    menu.append(&line).map_err(|e| e.to_string())?;
    menu.append(&PredefinedMenuItem::separator())
        .map_err(|e| e.to_string())?;
    for item in ITEMS {
        let r = match item {
            Some((id, label, _)) => menu.append(&MenuItem::with_id(id, label, true, None)),
            None => menu.append(&PredefinedMenuItem::separator()),
        };
        r.map_err(|e| e.to_string())?;
    }
    let icons: Vec<(IconState, tray_icon::Icon)> = IconState::ALL
        .iter()
        .map(|s| icon(*s).map(|i| (*s, i)))
        .collect::<Result<_, _>>()?;
    let first_icon = pick(&icons, first.icon).ok_or("no icon for the first state")?;
    let tray = tray_icon::TrayIconBuilder::new()
        .with_id("cloudnap")
        .with_menu(Box::new(menu))
        .with_icon(first_icon)
        .with_tooltip(&first.line)
        .with_title("cloudnap")
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Shown {
        tray,
        line,
        icons,
        view: first,
        calm: unchanged_for(&status),
        busy: status.operation.is_some(),
    })
}

/// Not built for this platform yet (see docs/platforms.md).
#[cfg(not(any(target_os = "linux", windows)))]
pub fn spawn(
    _status: StatusFn,
    _changes: Changes,
    _act: impl Fn(MenuAction) + Send + Sync + 'static,
) -> Result<(), String> {
    Err("the tray icon is only built for Linux in this version".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_menu_id_maps_to_its_action_and_every_icon_decodes() {
        for (id, _, action) in ITEMS.iter().flatten() {
            assert_eq!(action_for(id), Some(*action));
        }
        assert_eq!(action_for("status"), None);
        for s in IconState::ALL {
            let img = image::load_from_memory(icon_png(s)).unwrap();
            assert!(
                img.width() >= 16 && img.width() == img.height(),
                "{}",
                s.file()
            );
        }
    }
}
