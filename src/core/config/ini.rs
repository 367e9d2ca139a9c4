//! Reading the AWS shared config/credentials files (INI), and editing them
//! without touching anything but the one section being saved.

/// One `[name]` section of an INI text: its (normalised) name and its
/// `key = value` pairs in order (keys lowercased, values trimmed). Comments
/// (`#`, `;`), blank lines and indented sub-keys are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub pairs: Vec<(String, String)>,
}

impl Section {
    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        (self.pairs.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The sections of `text`, in order (pairs before the first header are
/// dropped).
pub fn sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines() {
        if let Some(name) = section_name(line) {
            out.push(Section {
                name,
                pairs: Vec::new(),
            });
            continue;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with(['#', ';']) || line.starts_with([' ', '\t']) {
            continue;
        }
        if let (Some(section), Some((k, v))) = (out.last_mut(), t.split_once('=')) {
            (section.pairs).push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// `text` with section `[header]` holding exactly `pairs`: replaced in place
/// if present (its comments and other keys dropped), appended otherwise.
/// Every other line is kept byte for byte.
pub fn upsert_section(text: &str, header: &str, pairs: &[(&str, &str)]) -> String {
    let body: String = pairs.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let mut out = String::with_capacity(text.len() + body.len() + header.len() + 4);
    let mut skipping = false;
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = section_name(line) {
            skipping = name == header && !replaced;
            if skipping {
                replaced = true;
                out.push_str(&format!("[{header}]\n{body}"));
                continue;
            }
        }
        // Blank lines of the replaced section stay, to keep the layout.
        if !skipping || line.trim().is_empty() {
            out.push_str(line);
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!("[{header}]\n{body}"));
    }
    out
}

/// The name in a `[name]` line (inner whitespace normalised to one space).
fn section_name(line: &str) -> Option<String> {
    let t = line.trim();
    let inner = t.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my creds\n[default]\naws_access_key_id = AKIAOLD\n\n[work]\naws_access_key_id = AKIAWORK\naws_secret_access_key = w\n\n[other]\nx = 1\n";

    #[test]
    fn sections_are_read_with_their_keys() {
        let text = "top = 1\n# c\n[ profile  dev ]\nRegion = eu-west-1 \ns3 =\n  max = 3\n\n[sso-session a]\nsso_start_url=https://x/start\n";
        let s = sections(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "profile dev");
        assert_eq!(s[0].get("region"), Some("eu-west-1"));
        assert_eq!(s[0].get("s3"), None, "empty values are unset");
        assert_eq!(s[0].get("max"), None, "sub-keys are skipped");
        assert_eq!(s[1].get("sso_start_url"), Some("https://x/start"));
    }

    #[test]
    fn replaces_only_the_named_section() {
        let out = upsert_section(FILE, "work", &[("aws_access_key_id", "AKIANEW")]);
        assert_eq!(
            out,
            "# my creds\n[default]\naws_access_key_id = AKIAOLD\n\n[work]\naws_access_key_id = AKIANEW\n\n[other]\nx = 1\n"
        );
    }

    #[test]
    fn appends_a_new_section_after_a_blank_line() {
        let out = upsert_section(
            "[default]\na = 1",
            "profile dev",
            &[("region", "eu-west-1")],
        );
        assert_eq!(
            out,
            "[default]\na = 1\n\n[profile dev]\nregion = eu-west-1\n"
        );
        assert_eq!(upsert_section("", "x", &[("a", "b")]), "[x]\na = b\n");
    }

    #[test]
    fn header_spacing_is_normalised_and_saving_twice_is_stable() {
        let text = "[ profile   dev ]\nregion = us-east-1\n";
        let once = upsert_section(text, "profile dev", &[("region", "eu-west-1")]);
        assert_eq!(once, "[profile dev]\nregion = eu-west-1\n");
        assert_eq!(
            upsert_section(&once, "profile dev", &[("region", "eu-west-1")]),
            once
        );
    }
}
