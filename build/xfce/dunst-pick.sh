#!/bin/sh
# dunst's dmenu (build/env.sh start_xfce_panel): of the context menu's lines
# on stdin, prints the first containing the text in $HOME/dunst-pick (what a
# user would click), so `dunstctl context` invokes that action.
grep -F -m1 -- "$(cat "$HOME/dunst-pick")"
