#!/usr/bin/env python3
"""One-off: moves src/core/*.rs into folders by concern and rewrites every
`core::<module>` path in src/ and tests/ (idempotent). Kept while branches
made before the move are merged; then deleted."""
import os, re, subprocess

MOVES = {  # old module -> (folder, new module name)
    "resource": ("model", "resource"), "operation": ("model", "operation"),
    "activity": ("model", "activity"), "history": ("model", "history"),
    "report": ("model", "outcome"),
    "idle": ("policy", "idle"), "holds": ("policy", "holds"), "policy": ("policy", "decide"),
    "busy": ("policy", "busy"), "retry": ("policy", "retry"), "team": ("policy", "team"),
    "deadline": ("policy", "deadline"),
    "protocol": ("protocol", "commands"), "reply": ("protocol", "reply"),
    "auth": ("protocol", "auth"), "status": ("protocol", "status"),
    "settings": ("config", "settings"), "settings_edit": ("config", "settings_edit"),
    "registry": ("config", "registry"), "registry_edit": ("config", "registry_edit"),
    "ini": ("config", "ini"), "iam": ("config", "iam"),
    "savings": ("savings", "savings"), "prices": ("savings", "prices"),
}
FOLDERS = sorted({f for f, _ in MOVES.values()})
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
for old, (folder, new) in MOVES.items():
    src, dst = f"src/core/{old}.rs", f"src/core/{folder}/{new}.rs"
    if os.path.exists(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        subprocess.run(["git", "mv", src, dst], check=True)
# core/mod.rs declares the folders; each folder's mod.rs its modules.
for folder in FOLDERS:
    mods = sorted(n for f, n in MOVES.values() if f == folder)
    path = f"src/core/{folder}/mod.rs"
    if not os.path.exists(path):
        docs = {"model": "Domain types shared by every layer: resources and capacities, what a sleep or wake did, activity, history events.",
                "policy": "Decisions, pure and clock-driven: idle, holds, sleep/wake/refresh, busy veto, retries, team rules, the AWS-side deadline.",
                "protocol": "The UDP protocol: command tables and parsing, replies, signed-command checks, the STATUS view.",
                "config": "settings.json and services.yaml: parsing, validation and text edits; the IAM documents of `aws-setup`.",
                "savings": "What sleeping saved: prices (shipped table, Price List answers) and savings from the history."}
        with open(path, "w") as f:
            f.write(f"//! {docs[folder]}\n\n" + "".join(f"pub mod {m};\n" for m in mods))
core = open("src/core/mod.rs").read()
for old in MOVES:
    core = re.sub(rf"^pub mod {old};\n", "", core, flags=re.M)
for folder in FOLDERS:
    if f"pub mod {folder};" not in core:
        core = core.replace("\n/// FNV-1a", f"pub mod {folder};\n\n/// FNV-1a", 1) if "\n/// FNV-1a" in core else core
core = re.sub(r"\n\n(pub mod \w+;\n)\n(pub mod )", r"\n\n\1\2", core)
open("src/core/mod.rs", "w").write(core)

new_names = {folder: {n for f, n in MOVES.values() if f == folder} for folder in FOLDERS}
def fix(text):
    def repl(m):
        old = m.group(2)
        rest = m.group(3) or ""
        folder, new = MOVES[old]
        # already a folder path (core::policy::decide::...)
        if old in new_names and rest and rest[2:].split("::")[0] in new_names[old]:
            return m.group(0)
        return f"{m.group(1)}core::{folder}::{new}{rest}"
    names = "|".join(sorted(MOVES, key=len, reverse=True))
    text = re.sub(rf"(\b(?:crate::)?)core::({names})\b((?:::\w+)?)", repl, text)
    # A renamed module imported as a whole keeps its old name where it is used.
    for old, (folder, new) in MOVES.items():
        if old != new:
            text = text.replace(f"core::{folder}::{new}::{{self,", f"core::{folder}::{new}::{{self as {old},")
            text = re.sub(rf"(use [\w:]*core::{folder}::{new});", rf"\1 as {old};", text)
    return text
for root in ("src", "tests"):
    for dp, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(dp, f)
                s = open(p).read()
                t = fix(s)
                if p.startswith("src/core/") and p.count("/") == 3:
                    t = t.replace("super::fnv1a", "crate::core::fnv1a")
                    t = re.sub(r'include_(str|bytes)!\("\.\./\.\./(?!\.\./)', r'include_\1!("../../../', t)
                if t != s:
                    open(p, "w").write(t)
