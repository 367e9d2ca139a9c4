//! The tray icon and its menu. On Linux tray-icon's backend is GTK, which
//! needs `gtk::init`, the icon and `gtk::main` on one dedicated thread.

use crate::ui::view::{tray_view, IconState, TrayView};
use serde_json::Value;
use std::sync::Arc;

/// What a menu item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    SleepNow,
    WakeNow,
    PauseHour,
    PauseUntilTomorrow,
    Resume,
    OpenServices,
    OpenLog,
    Credentials,
    Quit,
}

/// Menu entries in order: id, label, action (`None`: a separator).
const ITEMS: [Option<(&str, &str, MenuAction)>; 11] = [
    Some(("sleep", "Sleep now", MenuAction::SleepNow)),
    Some(("wake", "Wake now", MenuAction::WakeNow)),
    None,
    Some(("pause-hour", "Pause for 1 hour", MenuAction::PauseHour)),
    Some((
        "pause-tomorrow",
        "Pause until tomorrow",
        MenuAction::PauseUntilTomorrow,
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
    Some(("quit", "Quit", MenuAction::Quit)),
];

fn action_for(id: &str) -> Option<MenuAction> {
    ITEMS
        .iter()
        .flatten()
        .find(|(i, _, _)| *i == id)
        .map(|(_, _, a)| *a)
}

/// The app's current STATUS, for the status line.
pub type StatusFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// The PNG icon for `state`, from `assets/`.
fn icon_png(state: IconState) -> &'static [u8] {
    match state {
        IconState::Active => include_bytes!("../../assets/active.png"),
        IconState::Warning => include_bytes!("../../assets/warning.png"),
        IconState::Asleep => include_bytes!("../../assets/asleep.png"),
        IconState::Paused => include_bytes!("../../assets/paused.png"),
        IconState::Error => include_bytes!("../../assets/error.png"),
    }
}

fn icon(state: IconState) -> Result<tray_icon::Icon, String> {
    let img = image::load_from_memory_with_format(icon_png(state), image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", state.file()))?
        .into_rgba8();
    let (w, h) = img.dimensions();
    tray_icon::Icon::from_rgba(img.into_raw(), w, h).map_err(|e| e.to_string())
}

/// Starts the tray on its own thread. Menu choices are passed to `act`
/// (from the GTK thread); the status line and icon follow `status`, checked
/// once a second and redrawn only when they change. Returns once the icon is
/// up, or why it cannot be.
#[cfg(target_os = "linux")]
pub fn spawn(
    status: StatusFn,
    act: impl Fn(MenuAction) + Send + Sync + 'static,
) -> Result<(), String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tray".into())
        .spawn(move || {
            let result = build(status);
            let ok = result.is_ok();
            let _ = ready_tx.send(result.map(|_| ()));
            if ok {
                tray_icon::menu::MenuEvent::set_event_handler(Some(
                    move |e: tray_icon::menu::MenuEvent| {
                        if let Some(a) = action_for(&e.id.0) {
                            act(a);
                        }
                    },
                ));
                gtk::main();
            }
        })
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|_| "the tray thread stopped".to_string())?
}

#[cfg(target_os = "linux")]
fn build(status: StatusFn) -> Result<(), String> {
    use tray_icon::menu::{Menu, MenuItem, PredefinedMenuItem};
    gtk::init().map_err(|e| format!("GTK: {e}"))?;
    let menu = Menu::new();
    let line = MenuItem::with_id("status", "cloudnap", false, None);
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
    let first = tray_view(&status());
    let tray = tray_icon::TrayIconBuilder::new()
        .with_menu(Box::new(menu))
        .with_menu_on_left_click(true)
        .with_icon(
            icons
                .iter()
                .find(|(s, _)| *s == first.icon)
                .expect("every state")
                .1
                .clone(),
        )
        .with_tooltip(format!("cloudnap: {}", first.line))
        .with_title("cloudnap")
        .build()
        .map_err(|e| e.to_string())?;
    line.set_text(&first.line);
    let mut shown: TrayView = first;
    gtk::glib::timeout_add_local(std::time::Duration::from_secs(1), move || {
        let view = tray_view(&status());
        if view != shown {
            if view.icon != shown.icon {
                let icon = icons
                    .iter()
                    .find(|(s, _)| *s == view.icon)
                    .map(|(_, i)| i.clone());
                let _ = tray.set_icon(icon);
            }
            line.set_text(&view.line);
            let _ = tray.set_tooltip(Some(format!("cloudnap: {}", view.line)));
            shown = view;
        }
        gtk::glib::ControlFlow::Continue
    });
    Ok(())
}

/// Not built for this platform yet (see README).
#[cfg(not(target_os = "linux"))]
pub fn spawn(
    _status: StatusFn,
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
