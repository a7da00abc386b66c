//! Helpers for the end-to-end tests, split by what they drive:
//! - [`server`]: the real server in a temp dir, its CLI, signing in, enrolling devices;
//! - [`capture`]: the real capture binary, its service, and shared cameras and microphones;
//! - [`browser`]: the browser checks in `web/tests/`;
//! - [`uploads`]: synthetic sealed uploads, as a device makes them;
//! - [`media`]: the GStreamer pipelines the tests run;
//! - [`procstat`]: a process's CPU and memory, for the benchmarks;
//! - [`scanner`]: the structural scanner that proves no plaintext media rests on disk;
//! - [`seaweed`]: the S3-compatible object store for the storage tests.
//!
//! The binaries are built by `cargo build --workspace --bins` (README's test command does it).

pub mod browser;
pub mod capture;
pub mod inproc;
pub mod media;
pub mod procstat;
pub mod scanner;
pub mod seaweed;
pub mod server;
pub mod uploads;

pub use capture::{
    button_fifo, capture_json, press_button, record_once, share, start_capture, wait_for,
    wait_for_segments, Capture,
};
pub use inproc::InProcess;
pub use scanner::{find_plaintext_media, scan_tree};
pub use server::{column, Device, Server};
pub use uploads::{new_recording_id, sealed_segment};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The web app's folder in the source tree.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// Path of a workspace binary next to the test executable (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs workspace binary `name --config CONFIG ARGS`, feeding it `stdin`.
pub fn run_with_stdin(
    name: &str,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin(name))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A child process killed when dropped, so a failing test leaves no daemon running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}
