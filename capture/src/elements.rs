//! The GStreamer elements lessonlens uses and the Debian packages that provide them, read from
//! `capture/gst-elements.txt` (the one table; `scripts/setup.sh` installs from it too).
//!
//! [`in_description`] lists the elements a `gst-launch-1.0`-style description names, so that
//! `doctor` can say which package a missing element needs, and the element check in `tests/` can
//! hold every pipeline against the table.

/// The table, as shipped with this build.
pub const TABLE: &str = include_str!("../gst-elements.txt");

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    pub name: &'static str,
    /// The Debian package, or `builtin` for elements compiled into the capture binary.
    pub package: &'static str,
    /// Hardware encoders: used when present, never required.
    pub optional: bool,
}

/// Every row of [`TABLE`].
pub fn table() -> impl Iterator<Item = Element> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap_or_default();
            let package = words.next().unwrap_or_default();
            Element {
                name,
                package,
                optional: words.next() == Some("optional"),
            }
        })
}

/// The table's row for `name`, if it has one.
pub fn lookup(name: &str) -> Option<Element> {
    table().find(|e| e.name == name)
}

/// The element names in a pipeline description, in order, each once. Caps (`video/x-raw,...`),
/// properties (`name=value`, quoted values included) and pad references (`mux.`, `d.video_0`)
/// are not elements.
pub fn in_description(desc: &str) -> Vec<String> {
    // Drop quoted property values first: they may hold spaces and `!`.
    let mut unquoted = String::with_capacity(desc.len());
    let mut quoted = false;
    for ch in desc.chars() {
        match ch {
            '"' => quoted = !quoted,
            _ if !quoted => unquoted.push(ch),
            _ => {}
        }
    }
    let mut names: Vec<String> = Vec::new();
    for word in unquoted.split(|c: char| c.is_whitespace() || c == '!') {
        let element = !word.is_empty()
            && !word.contains(['/', '=', '.', ','])
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if element && !names.iter().any(|n| n == word) {
            names.push(word.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_skips_caps_properties_and_pads() {
        let desc = "videotestsrc name=camera is-live=true ! video/x-raw,width=320 ! timeoverlay \
                    font-desc=\"Sans 48 ! x\" ! tee name=t t. ! queue ! mux. d.video_0 ! appsink \
                    isofmp4mux name=mux ! queue";
        assert_eq!(
            in_description(desc),
            [
                "videotestsrc",
                "timeoverlay",
                "tee",
                "queue",
                "appsink",
                "isofmp4mux"
            ]
        );
    }

    #[test]
    fn the_table_names_a_package_for_every_row_and_each_element_once() {
        let rows: Vec<_> = table().collect();
        assert!(rows.len() > 20);
        for (i, e) in rows.iter().enumerate() {
            assert!(!e.package.is_empty(), "{} has no package", e.name);
            assert!(
                !rows[..i].iter().any(|o| o.name == e.name),
                "{} is in the table twice",
                e.name
            );
        }
        assert_eq!(lookup("timeoverlay").unwrap().package, "gstreamer1.0-x");
        assert!(lookup("nvh264enc").unwrap().optional);
        assert!(lookup("no-such-element").is_none());
    }
}
