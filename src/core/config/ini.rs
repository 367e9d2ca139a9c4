//! Editing the AWS shared config/credentials files (INI) without touching
//! anything but the one section being saved.

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
