//! Editing `services.yaml` text in place, so registering or unregistering a
//! resource keeps the other entries and the user's comments. When the text
//! has a shape these edits do not handle (flow style), the caller falls back
//! to [`render`], which writes the whole registry canonically.

use crate::core::config::registry::{Entry, Registry};
use crate::core::model::resource::{Kind, ResourceId};

/// The top-level key holding entries of `kind`.
pub fn section_key(kind: Kind) -> &'static str {
    kind.spec().section
}

fn scalar(s: &str) -> String {
    serde_yaml::to_string(s)
        .map(|y| y.trim_end().to_string())
        .unwrap_or_else(|_| format!("{s:?}"))
}

/// One list item, each line starting with `indent`.
pub fn render_entry(e: &Entry, indent: &str) -> String {
    let mut fields: Vec<(&str, String)> =
        e.id.kind()
            .spec()
            .names
            .iter()
            .zip(e.id.names())
            .map(|(field, name)| (field.key, scalar(name)))
            .collect();
    fields.push(("region", scalar(e.id.region())));
    if let Some(d) = e.desired_size {
        fields.push(("desired_size", d.to_string()));
    }
    if let Some(port) = e.ready_port {
        fields.push(("ready_port", port.to_string()));
    }
    if e.hibernate {
        fields.push(("hibernate", "true".to_string()));
    }
    if e.shared {
        fields.push(("shared", "true".to_string()));
    }
    if !e.description.is_empty() {
        fields.push(("description", scalar(&e.description)));
    }
    if let Some(p) = &e.profile {
        fields.push(("profile", scalar(p)));
    }
    if let Some(t) = e.timeout {
        let minutes = crate::core::config::registry::minutes(t);
        fields.push(("timeout_minutes", minutes.to_string()));
    }
    if e.wake != crate::core::policy::order::WakePolicy::Auto {
        fields.push(("wake", e.wake.name().to_string()));
    }
    for (key, value) in [
        ("after", &e.after),
        ("ssh_host", &e.ssh_host),
        ("ssh_address", &e.ssh_address),
    ] {
        if let Some(v) = value {
            fields.push((key, scalar(v)));
        }
    }
    fields
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let lead = if i == 0 { "- " } else { "  " };
            format!("{indent}{lead}{k}: {v}\n")
        })
        .collect()
}

/// The whole registry in canonical form.
pub fn render(r: &Registry) -> String {
    let mut out = String::from("# cloudnap services registry (rewritten by cloudnap)\n");
    for kind in Kind::ALL {
        let entries: Vec<&Entry> = r.entries.iter().filter(|e| e.id.kind() == kind).collect();
        if entries.is_empty() {
            out += &format!("{}: []\n", section_key(kind));
        } else {
            out += &format!("{}:\n", section_key(kind));
            for e in entries {
                out += &render_entry(e, "  ");
            }
        }
    }
    out
}

/// The section of `key`: its header line index and the index of its last
/// body line (indented or a `-` item), if any.
fn find_section(lines: &[&str], key: &str) -> Option<(usize, Option<usize>)> {
    let header = lines.iter().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let mut last = None;
    for (i, l) in lines.iter().enumerate().skip(header + 1) {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with(' ') || l.starts_with('-') || l.starts_with('\t') {
            last = Some(i);
        } else {
            break;
        }
    }
    Some((header, last))
}

fn item_indent(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    trimmed
        .starts_with("- ")
        .then(|| &line[..line.len() - trimmed.len()])
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// `text` with `entry` appended to its section, or `None` if the section
/// has a shape this does not edit.
pub fn insert_entry(text: &str, entry: &Entry) -> Option<String> {
    let key = section_key(entry.id.kind());
    let lines: Vec<&str> = text.lines().collect();
    let Some((header, last)) = find_section(&lines, key) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        return Some(format!("{out}{key}:\n{}", render_entry(entry, "  ")));
    };
    let after_key = lines[header][key.len() + 1..].trim();
    let value = after_key.split(" #").next().unwrap_or("").trim();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match value {
        "" | "~" | "null" => {}
        "[]" => out[header] = format!("{key}:"),
        _ => return None,
    }
    let indent = (header + 1..=last.unwrap_or(header))
        .find_map(|i| item_indent(lines[i]))
        .unwrap_or("  ");
    let at = last.unwrap_or(header) + 1;
    let item = render_entry(entry, indent);
    out.insert(at, item.trim_end_matches('\n').to_string());
    Some(join(&out))
}

/// The id an item block describes, if it parses.
fn block_id(kind: Kind, block: &[&str]) -> Option<ResourceId> {
    let v: serde_yaml::Value = serde_yaml::from_str(&block.join("\n")).ok()?;
    let m = v.as_sequence()?.first()?.as_mapping()?;
    let get = |k: &str| m.get(k).and_then(|v| v.as_str()).map(String::from);
    let names = kind
        .spec()
        .names
        .iter()
        .map(|f| get(f.key))
        .collect::<Option<Vec<_>>>()?;
    Some(ResourceId::new(kind, names, get("region")?))
}

/// `text` without the item for `id`, or `None` if it cannot be found as a
/// block-style item.
pub fn remove_entry(text: &str, id: &ResourceId) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (header, last) = find_section(&lines, section_key(id.kind()))?;
    let last = last?;
    let indent = (header + 1..=last).find_map(|i| item_indent(lines[i]))?;
    let starts: Vec<usize> = (header + 1..=last)
        .filter(|&i| item_indent(lines[i]) == Some(indent))
        .collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(last + 1, |&next| next);
        let block: Vec<&str> = lines[start..end]
            .iter()
            .map(|l| l.get(indent.len()..).unwrap_or(""))
            .collect();
        if block_id(id.kind(), &block).as_ref() == Some(id) {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out.drain(start..end);
            return Some(join(&out));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec2(id: &str) -> Entry {
        Entry {
            description: "box: one".into(),
            ..Entry::new(ResourceId::new(Kind::Ec2, [id], "us-east-1"))
        }
    }

    const TEXT: &str = "# my registry\nec2_instances:\n  # the dev box\n  - instance_id: i-1\n    region: us-east-1 # home\n\n# services\necs_services: []\n";

    #[test]
    fn insert_keeps_comments_and_other_entries() {
        let out = insert_entry(TEXT, &ec2("i-2")).unwrap();
        assert!(
            out.contains("# the dev box") && out.contains("# home") && out.contains("# services")
        );
        let r = Registry::parse(&out).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[1], ec2("i-2"));
    }

    #[test]
    fn insert_into_empty_flow_list_and_missing_section() {
        let ecs = Entry {
            profile: Some("work".into()),
            ..Entry::new(ResourceId::new(Kind::Ecs, ["c", "yes"], "eu-west-1"))
        };
        let out = insert_entry(TEXT, &ecs).unwrap();
        assert_eq!(Registry::parse(&out).unwrap().entries[1], ecs);
        let out = insert_entry("# nothing yet\n", &ecs).unwrap();
        assert_eq!(Registry::parse(&out).unwrap().entries, vec![ecs]);
        assert_eq!(
            insert_entry(
                "ec2_instances: [{instance_id: i-1, region: us-east-1}]\n",
                &ec2("i-2")
            ),
            None
        );
    }

    #[test]
    fn insert_follows_column_zero_items() {
        let out = insert_entry(
            "ec2_instances:\n- instance_id: i-1\n  region: us-east-1\n",
            &ec2("i-2"),
        )
        .unwrap();
        assert_eq!(Registry::parse(&out).unwrap().entries.len(), 2);
    }

    #[test]
    fn remove_takes_out_exactly_one_block() {
        let two = insert_entry(TEXT, &ec2("i-2")).unwrap();
        let out = remove_entry(&two, &ec2("i-1").id).unwrap();
        let r = Registry::parse(&out).unwrap();
        assert_eq!(r.entries, vec![ec2("i-2")]);
        assert!(out.contains("# my registry") && out.contains("# services"));
        assert_eq!(remove_entry(&two, &ec2("i-9").id), None);
    }

    #[test]
    fn render_round_trips() {
        let r = Registry {
            entries: vec![ec2("i-1"), ec2("i-2")],
        };
        assert_eq!(Registry::parse(&render(&r)).unwrap(), r);
    }
}
