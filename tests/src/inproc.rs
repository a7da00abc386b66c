//! The server's web router in this process, for route-level checks that need no process, no
//! socket and no TLS (bad input, role checks): the same state, middleware and handlers as
//! `lessonlens-server serve`, over a temporary data folder, called with `tower`'s `oneshot`.

use lessonlens_server::config::Config;
use lessonlens_server::http::state::{AppState, Shared};
use std::net::SocketAddr;
use tower::ServiceExt;

pub struct InProcess {
    _dir: tempfile::TempDir,
    pub state: Shared,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
}

/// An answer: its status and its body (JSON, or `null` if it is not).
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: serde_json::Value,
}

impl InProcess {
    pub fn start() -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("server.toml");
        std::fs::write(
            &config_file,
            format!(
                "listen = \"127.0.0.1:0\"\ndevice_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmaster_key_file = \"{}\"\nweb_dir = \"{}\"\n",
                dir.path().join("data").display(),
                dir.path().join("master.key").display(),
                crate::web_dir().display()
            ),
        )
        .unwrap();
        let opened = lessonlens_server::store::open(Config::load(&config_file).unwrap()).unwrap();
        let (state, _tls) = AppState::start(opened).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        InProcess {
            _dir: dir,
            router: lessonlens_server::http::router(state.clone()),
            state,
            runtime,
        }
    }

    /// Adds a person with a password they chose, as the console's `user add` does.
    pub fn add_user(&self, username: &str, password: &str, role: &str) {
        use lessonlens_server::domain::people::Role;
        let c = self.state.db.lock().unwrap();
        let roles: Vec<Role> = role.split(',').filter_map(Role::parse).collect();
        let id =
            lessonlens_server::store::accounts::add_user(&c, username, username, password, &roles)
                .unwrap();
        if roles.contains(&Role::Teacher) {
            self.state.vault.lock().unwrap().create_key(id, 0).unwrap();
        }
    }

    /// A session cookie for `username` (signed in with their password).
    pub fn login(&self, username: &str, password: &str) -> String {
        let (status, cookies) = self.send(
            "POST",
            "/api/login",
            None,
            Some(serde_json::json!({"username": username, "password": password}).to_string()),
        );
        assert_eq!(status.status, 200, "{username}: {}", status.body);
        cookies
            .into_iter()
            .find(|c| c.starts_with("__Host-lessonlens="))
            .and_then(|c| c.split(';').next().map(str::to_string))
            .expect("a session cookie")
    }

    /// `method path` as a same-origin browser request from 127.0.0.1, with `cookie` and a JSON
    /// `body` if given.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.send(method, path, cookie, body.map(str::to_string)).0
    }

    /// Like [`InProcess::call`], with the body sent as is under `content_type`.
    pub fn call_raw(&self, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", content_type);
        req = req.extension(axum::extract::ConnectInfo(SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
        self.answer(req.body(axum::body::Body::from(body.to_string())).unwrap())
            .0
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<String>,
    ) -> (Answer, Vec<String>) {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .extension(axum::extract::ConnectInfo(SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        self.answer(
            req.body(axum::body::Body::from(body.unwrap_or_default()))
                .unwrap(),
        )
    }

    fn answer(&self, req: axum::http::Request<axum::body::Body>) -> (Answer, Vec<String>) {
        self.runtime.block_on(async {
            let res = self.router.clone().oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let cookies = res
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (
                Answer {
                    status,
                    content_type,
                    body,
                },
                cookies,
            )
        })
    }
}
