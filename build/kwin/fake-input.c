/* One key press (KEY_A down and up) into KWin through org_kde_kwin_fake_input,
 * the input KWin counts as the user's (wtype's virtual-keyboard protocol is
 * not offered there). KWin must run with KWIN_WAYLAND_NO_PERMISSION_CHECKS=1.
 * Built by build/env.sh (start_kwin) with wayland-scanner from
 * plasma-wayland-protocols' fake-input.xml.
 * Usage: WAYLAND_DISPLAY=... kwin-fake-input   exit 0 once KWin has the key. */
#include <linux/input-event-codes.h>
#include <stdio.h>
#include <string.h>
#include <wayland-client.h>
#include "fake-input-client-protocol.h"

static struct org_kde_kwin_fake_input *fake;

static void global(void *data, struct wl_registry *registry, uint32_t name,
                   const char *interface, uint32_t version) {
  (void)data;
  if (strcmp(interface, org_kde_kwin_fake_input_interface.name) == 0 && version >= 4)
    fake = wl_registry_bind(registry, name, &org_kde_kwin_fake_input_interface, 4);
}

static void global_remove(void *data, struct wl_registry *registry, uint32_t name) {
  (void)data, (void)registry, (void)name;
}

static const struct wl_registry_listener listener = {global, global_remove};

int main(void) {
  struct wl_display *display = wl_display_connect(NULL);
  if (!display) {
    fprintf(stderr, "kwin-fake-input: cannot connect to the Wayland display\n");
    return 1;
  }
  struct wl_registry *registry = wl_display_get_registry(display);
  wl_registry_add_listener(registry, &listener, NULL);
  wl_display_roundtrip(display);
  if (!fake) {
    fprintf(stderr, "kwin-fake-input: no org_kde_kwin_fake_input v4 (KWIN_WAYLAND_NO_PERMISSION_CHECKS=1?)\n");
    return 1;
  }
  org_kde_kwin_fake_input_authenticate(fake, "cloudnap tests", "typing in tests");
  org_kde_kwin_fake_input_keyboard_key(fake, KEY_A, WL_KEYBOARD_KEY_STATE_PRESSED);
  org_kde_kwin_fake_input_keyboard_key(fake, KEY_A, WL_KEYBOARD_KEY_STATE_RELEASED);
  if (wl_display_roundtrip(display) < 0) {
    fprintf(stderr, "kwin-fake-input: the display connection failed\n");
    return 1;
  }
  wl_display_disconnect(display);
  return 0;
}
