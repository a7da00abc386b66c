//! Issue 14.1: every GStreamer element a pipeline uses is in the element table
//! (`capture/gst-elements.txt`), and the package that holds its plugin on this machine is one
//! that `scripts/setup.sh` installs, directly or as a dependency. A machine that has a plugin
//! from an earlier manual install can no longer hide a missing install step.

use gst::prelude::*;
use lessonlens_capture::config::Config;
use lessonlens_capture::{elements, pipeline};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn config(video: &str, audio: &str) -> Config {
    toml::from_str(&format!(
        r#"server_url = "https://school.example:8443"
           identity_dir = "/tmp/identity"
           spool_dir = "/tmp/spool"
           [video]
           source = "{video}"
           device = "/dev/video0"
           [audio]
           source = "{audio}"
           device = "hw:1""#
    ))
    .unwrap()
}

/// Every pipeline description the capture service and the tests can run.
fn descriptions() -> Vec<String> {
    let mut all = Vec::new();
    for video in ["test", "v4l2", "shm"] {
        for audio in ["test", "alsa", "pulse", "shm"] {
            let mut c = config(video, audio);
            for venc in pipeline::VIDEO_ENCODERS {
                for aenc in pipeline::AUDIO_ENCODERS {
                    all.push(pipeline::describe(&c, venc, aenc));
                }
            }
            // A second microphone for the room, mixed in.
            c.room_audio = Some(c.audio.clone());
            all.push(pipeline::describe(&c, "x264enc", "avenc_aac"));
        }
    }
    all.extend(pipeline::VIDEO_ENCODERS.map(pipeline::probe_description));
    let socket = Path::new("/tmp/socket");
    all.push(lessonlens_e2e::media::shared_source("camera", socket));
    for what in ["microphone", "silence", "tone"] {
        all.push(lessonlens_e2e::media::shared_source(what, socket));
    }
    all.push(lessonlens_e2e::media::demux(Path::new("/tmp/a.mp4")));
    all.push(lessonlens_e2e::media::shared_recordings(&[(
        socket, socket,
    )]));
    all
}

/// What `setup.sh` installs, and everything those packages depend on as installed here (Depends
/// and Pre-Depends, not Recommends: setup.sh installs with --no-install-recommends). Read from
/// dpkg's own records, so it needs no apt package lists.
fn installed_by_setup() -> BTreeSet<String> {
    let out = Command::new(repo().join("scripts/setup.sh"))
        .arg("--print-packages")
        .output()
        .unwrap();
    assert!(out.status.success(), "setup.sh --print-packages failed");
    let depends = installed_depends();
    let mut todo: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut all = BTreeSet::new();
    while let Some(package) = todo.pop() {
        if !all.insert(package.clone()) {
            continue;
        }
        // "a (>= 1), b | c, d:any": every group, and of alternatives those installed.
        for group in depends.get(&package).map_or("", String::as_str).split(',') {
            for alt in group.split('|') {
                let name = alt.split_whitespace().next().unwrap_or_default();
                let name = name.split(':').next().unwrap_or_default();
                if depends.contains_key(name) {
                    todo.push(name.to_string());
                }
            }
        }
    }
    all
}

/// Every installed package with its Depends and Pre-Depends, from one `dpkg-query`.
fn installed_depends() -> BTreeMap<String, String> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package}\t${Status}\t${Pre-Depends}, ${Depends}\n",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (package, status, depends) = (f.next()?, f.next()?, f.next()?);
            status
                .ends_with(" installed")
                .then(|| (package.to_string(), depends.to_string()))
        })
        .collect()
}

/// The Debian package that holds the file, by `dpkg -S`. GStreamer may name a plugin by a path
/// through the merged-/usr symlink (`/lib` -> `/usr/lib`), which dpkg does not know.
fn package_of(file: &str) -> Option<String> {
    let real = std::fs::canonicalize(file).ok()?;
    let out = Command::new("dpkg").arg("-S").arg(&real).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?;
    let package = line.split(':').next()?.trim();
    (!package.is_empty()).then(|| package.to_string())
}

#[test]
fn every_element_a_pipeline_uses_is_in_the_table_and_installed_by_setup() {
    let used: BTreeSet<String> = descriptions()
        .iter()
        .flat_map(|d| elements::in_description(d))
        .collect();
    let not_in_table: Vec<_> = used
        .iter()
        .filter(|e| elements::lookup(e).is_none())
        .collect();
    assert!(
        not_in_table.is_empty(),
        "these elements are used in a pipeline but missing from capture/gst-elements.txt: {not_in_table:?}"
    );
    // Rows for elements nobody uses would make setup.sh install packages for nothing.
    let unused: Vec<_> = elements::table()
        .filter(|e| !used.contains(e.name))
        .map(|e| e.name)
        .collect();
    assert!(
        unused.is_empty(),
        "the element table lists unused elements: {unused:?}"
    );

    pipeline::init().unwrap();
    let setup = installed_by_setup();
    let mut problems = BTreeMap::new();
    for e in elements::table() {
        let Some(factory) = gst::ElementFactory::find(e.name) else {
            if !e.optional {
                problems.insert(
                    e.name,
                    format!("not on this machine (table: {})", e.package),
                );
            }
            continue;
        };
        if e.package == "builtin" {
            continue;
        }
        let plugin = factory.plugin().expect("a found element has a plugin");
        let Some(file) = plugin.filename() else {
            problems.insert(e.name, "its plugin has no file".into());
            continue;
        };
        let file = file.display().to_string();
        match package_of(&file) {
            None => {
                problems.insert(e.name, format!("{file} belongs to no Debian package"));
            }
            Some(p) if p != e.package => {
                problems.insert(
                    e.name,
                    format!("the table says {}, but {file} is in {p}", e.package),
                );
            }
            Some(p) if !e.optional && !setup.contains(&p) => {
                problems.insert(
                    e.name,
                    format!("{file} is in {p}, which scripts/setup.sh does not install"),
                );
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_check_catches_a_package_that_setup_does_not_install() {
    // gstreamer1.0-x (timeoverlay) is what a fresh machine lacked before this check existed; it
    // must come from setup.sh itself, not from a dependency that happens to pull it in.
    let setup = installed_by_setup();
    assert!(setup.contains("gstreamer1.0-x"));
    assert!(setup.contains("gstreamer1.0-alsa"));
    // Their dependencies count (gstreamer1.0-x needs libpango), a package nothing in setup.sh
    // depends on does not.
    assert!(setup.iter().any(|p| p.starts_with("libpango")));
    assert!(!setup.contains("gstreamer1.0-qt5"));
}
