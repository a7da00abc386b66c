//! Sign-in and the viewer's own recordings.

use super::Route;
use crate::domain::clock;
use crate::domain::people::{Role, User, UserId};
use crate::domain::second_factor::{self, Check, Next};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{
    session_token, AnySession, ClientIp, CurrentUser, Shared, SESSION_COOKIE,
};
use crate::store::accounts;
use crate::store::recordings;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use rusqlite::Connection;
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        ("POST", "/api/login", post(login)),
        ("POST", "/api/logout", post(logout)),
        ("GET", "/api/me", get(me)),
        ("POST", "/api/me/second-factor", post(second_factor_begin)),
        (
            "POST",
            "/api/me/second-factor/confirm",
            post(second_factor_confirm),
        ),
        ("GET", "/api/recordings", get(my_recordings)),
        ("GET", "/api/me/export", get(export_archive)),
        ("POST", "/api/invite", post(accept_invite)),
        ("POST", "/api/recover", post(recover)),
        ("POST", "/api/me/recovery-code", post(make_recovery_code)),
        ("PUT", "/api/me/device-code", put(set_device_code)),
        ("POST", "/api/me/password", post(change_password)),
        (
            "POST",
            "/api/me/admin-actions/seen",
            post(admin_actions_seen),
        ),
    ]
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: zeroize::Zeroizing<String>,
    /// The code from the person's authenticator app, when they use two-step sign-in.
    #[serde(default)]
    code: Option<zeroize::Zeroizing<String>>,
}

fn me_json(u: &User, setup_only: bool, second_factor: bool) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "roles": u.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        // Signed in only to set up two-step sign-in, which the school requires of them.
        "setup_only": setup_only,
        "second_factor": second_factor,
    })
}

/// Hashes a password someone chose, on a blocking thread (Argon2 is slow and takes ~19 MiB); one
/// that is too short or too common is a bad request that says so.
pub(super) async fn hash_new_password(password: zeroize::Zeroizing<String>) -> AppResult<String> {
    tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::BadRequest(e.to_string()))
}

/// What the person's account page and the notice at sign-in need: whether they chose their own
/// password and made a recovery code, whether they have a device code, and every change an admin
/// (or the server's console) made to their account.
fn account_json(c: &Connection, u: &User) -> AppResult<serde_json::Value> {
    let (changes, unseen) = accounts::account_changes(c, u)?;
    let (own_password, recovery, code) = accounts::secrets_set(c, u.id)?;
    Ok(serde_json::json!({
        "own_password": own_password,
        "has_recovery_code": recovery,
        "has_device_code": code,
        "admin_actions": changes,
        "unseen_admin_actions": unseen,
    }))
}

/// [`me_json`] with [`account_json`].
async fn me_full(st: &Shared, u: User, setup_only: bool, on: bool) -> AppResult<serde_json::Value> {
    let mut me = me_json(&u, setup_only, on);
    let account = st.db(move |c| account_json(c, &u)).await?;
    if let (Some(me), serde_json::Value::Object(extra)) = (me.as_object_mut(), account) {
        me.extend(extra);
    }
    Ok(me)
}

async fn second_factor_on(st: &Shared, user_id: UserId) -> AppResult<bool> {
    st.vault(move |v| Ok(v.totp_on(user_id)?)).await
}

/// What wrong passwords count against: an account as tried from one address. Five failures make
/// that address wait, not the account: someone guessing from their own machine cannot lock the
/// real person (or the admin) out from theirs. The per-address limit bounds guessing across
/// accounts.
fn account_key(username: &str, ip: std::net::IpAddr) -> String {
    format!("{username} {}", crate::domain::network::guess_source(ip))
}

/// The whole minutes someone must wait, for `secs` seconds.
fn wait_minutes(secs: i64) -> i64 {
    (secs + 59) / 60
}

/// One guess at an account's password or recovery code, counted before it is checked so that
/// parallel guesses cannot slip past the limits: per account and address, per address, and per
/// account from everywhere, unless the browser has signed in to the account before (see
/// [`known_browser`]). A success is taken back with [`Guess::succeeded`].
struct Guess {
    ip: std::net::IpAddr,
    username: String,
    /// Whether it counted against the account's limit from everywhere.
    everywhere: bool,
}

impl Guess {
    fn count(
        st: &Shared,
        ip: std::net::IpAddr,
        username: &str,
        known: bool,
        now: i64,
    ) -> AppResult<Guess> {
        let ip = crate::domain::network::guess_source(ip);
        let refused = |secs: i64| {
            tracing::warn!(%ip, "sign-in refused: too many failures");
            AppError::TooManyRequestsFor(wait_minutes(secs))
        };
        st.login_failures_address
            .attempt(&ip, now)
            .map_err(refused)?;
        if let Err(secs) = st
            .login_failures_account
            .attempt(&account_key(username, ip), now)
        {
            st.login_failures_address.forgive_last(&ip);
            return Err(refused(secs));
        }
        if !known {
            if let Err(secs) = st
                .login_failures_everywhere
                .attempt(&username.to_string(), now)
            {
                st.login_failures_address.forgive_last(&ip);
                st.login_failures_account
                    .forgive_last(&account_key(username, ip));
                tracing::warn!(%ip, "sign-in refused: many failures for this account from elsewhere");
                return Err(AppError::TooManyRequestsElsewhere(wait_minutes(secs)));
            }
        }
        Ok(Guess {
            ip,
            username: username.to_string(),
            everywhere: !known,
        })
    }

    /// The password was right, though a second factor is still to come: it was no guess at the
    /// account from elsewhere.
    fn password_was_right(&self, st: &Shared) {
        if self.everywhere {
            st.login_failures_everywhere.forgive_last(&self.username);
        }
    }

    /// The guess was right: it is taken back, and the account's failures from this address are
    /// forgotten. Failures from elsewhere still count.
    fn succeeded(self, st: &Shared) {
        st.login_failures_address.forgive_last(&self.ip);
        st.login_failures_account
            .clear(&account_key(&self.username, self.ip));
        if self.everywhere {
            st.login_failures_everywhere.forgive_last(&self.username);
        }
    }
}

/// The cookie a browser gets when someone signs in with it: proof that it signed in to that
/// account before, which lets it past the account's limit from everywhere. A random value and
/// an HMAC of it with the username, under a key from the master key: it says nothing by itself.
const KNOWN_COOKIE: &str = "__Host-lessonlens-known";

fn known_value(st: &Shared, username: &str, nonce: &[u8]) -> String {
    let mac = crate::store::vault::hmac_sha256(
        st.known_browser_key.as_ref(),
        &[b"known-browser", username.as_bytes(), b"\0", nonce],
    );
    format!("{}.{}", hex::encode(nonce), hex::encode(mac))
}

/// Whether the request carries a known-browser cookie for `username` (compared in constant time).
fn known_browser(st: &Shared, headers: &HeaderMap, username: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some(value) = crate::http::state::cookie(headers, KNOWN_COOKIE) else {
        return false;
    };
    let Some(nonce) = value
        .split_once('.')
        .and_then(|(n, _)| hex::decode(n).ok())
        .filter(|n| n.len() == 16)
    else {
        return false;
    };
    value
        .as_bytes()
        .ct_eq(known_value(st, username, &nonce).as_bytes())
        .into()
}

async fn login(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    Json(form): Json<LoginForm>,
) -> AppResult<Response> {
    let hours = st.config.session_hours;
    let username = form.username.trim().to_ascii_lowercase();
    let now = clock::now();
    let guess = Guess::count(
        &st,
        ip,
        &username,
        known_browser(&st, &headers, &username),
        now,
    )?;
    let (user, hash) = st
        .db(move |c| Ok(accounts::login_candidate(c, &username)?))
        .await?;
    // Argon2 is deliberately slow and uses ~19 MiB: run a few at a time, without the database.
    let password = form.password;
    let _slot = st
        .password_checks
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let ok = tokio::task::spawn_blocking(move || accounts::password_matches(&hash, &password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let audit_key = st.audit_key.clone();
    let Some(user) = user.filter(|_| ok) else {
        st.db(move |c| {
            // The typed username is not recorded: it is often a password typed in the wrong box.
            crate::store::audit::record(c, &audit_key, "unknown", "login-failed", "")?;
            Ok(())
        })
        .await?;
        return Err(AppError::BadRequest("wrong username or password".into()));
    };

    // The password is right; now the second factor, if the person has one or must have one.
    let policy = &st.config.second_factor;
    let uid = user.id;
    let stored = st.vault(move |v| Ok(v.totp(uid)?)).await?;
    let set_up = stored.as_ref().is_some_and(|t| t.confirmed);
    let setup_only = match second_factor::next(policy.required(&user, ip), set_up, policy.on_site(ip)) {
        Next::SignedIn => false,
        Next::SetupOnly => true,
        Next::Refused => {
            return Err(AppError::Forbidden(
                "your school requires two-step sign-in away from school, and it is not set up for your account: set it up from a computer at school first",
            ))
        }
        Next::NeedCode => {
            let (Some(code), Some(stored)) = (form.code, stored) else {
                // Nothing is stored and no session is made: the app asks for the code and sends
                // everything again. The attempt still counts against this address's limits.
                guess.password_was_right(&st);
                return Ok(Json(serde_json::json!({ "second_factor": "code_required" })).into_response());
            };
            let now = now as u64;
            let refused = match second_factor::check(&stored, &user.username, &code, now) {
                Check::Accepted(step) => {
                    if st.vault(move |v| Ok(v.totp_accept(uid, step)?)).await? {
                        None
                    } else {
                        Some("that code was used already; wait for the next one")
                    }
                }
                Check::Reused => Some("that code was used already; wait for the next one"),
                Check::Wrong => Some("wrong code: check the time on your phone and type the newest code"),
            };
            if let Some(message) = refused {
                let who = user.audit_id.clone();
                st.db(move |c| {
                    crate::store::audit::record(c, &audit_key, &who, "login-code-failed", "")?;
                    Ok(())
                })
                .await?;
                return Err(AppError::BadRequest(message.into()));
            }
            false
        }
    };
    let (user, token) = st
        .db(move |c| {
            let token = accounts::create_session(c, user.id, hours, setup_only)?;
            crate::store::audit::record(c, &audit_key, &user.audit_id, "login", "")?;
            Ok((user, token))
        })
        .await?;
    guess.succeeded(&st);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        token.as_str(),
        u64::from(hours) * 3600
    );
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(
        &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
        &mut nonce,
    );
    let known = format!(
        "{KNOWN_COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        known_value(&st, &user.username, &nonce),
        365 * 24 * 3600
    );
    let mut res = Json(me_full(&st, user, setup_only, set_up).await?).into_response();
    for c in [cookie, known] {
        res.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(|e| AppError::Internal(e.into()))?,
        );
    }
    Ok(res)
}

async fn logout(State(st): State<Shared>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = session_token(&headers) {
        st.db(move |c| Ok(accounts::end_session(c, &token)?))
            .await?;
    }
    let mut res = Json(serde_json::json!({"signed_out": true})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-lessonlens=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(res)
}

async fn me(State(st): State<Shared>, s: AnySession) -> AppResult<Json<serde_json::Value>> {
    let on = second_factor_on(&st, s.user.id).await?;
    Ok(Json(me_full(&st, s.user, s.setup_only, on).await?))
}

/// The person has read the changes admins made to their account (the notice at sign-in).
#[derive(Deserialize)]
struct SeenForm {
    /// The newest change the notice showed (its `id`): one made since stays unseen.
    up_to: i64,
}

async fn admin_actions_seen(
    State(st): State<Shared>,
    s: AnySession,
    Json(form): Json<SeenForm>,
) -> AppResult<Json<serde_json::Value>> {
    let id = s.user.id;
    let n = st
        .db(move |c| Ok(accounts::admin_actions_seen(c, id, form.up_to)?))
        .await?;
    Ok(Json(serde_json::json!({ "seen": n })))
}

#[derive(Deserialize)]
struct PasswordForm {
    password: zeroize::Zeroizing<String>,
}

/// Checks the signed-in person's password again (before something a stolen session must not be
/// able to do). Counts against the same limits as signing in.
async fn confirm_password(
    st: &Shared,
    ip: std::net::IpAddr,
    user: &User,
    password: zeroize::Zeroizing<String>,
) -> AppResult<()> {
    let now = clock::now();
    if let Err(secs) = st
        .login_failures_account
        .attempt(&account_key(&user.username, ip), now)
    {
        return Err(AppError::TooManyRequestsFor(wait_minutes(secs)));
    }
    let username = user.username.clone();
    let (_, hash) = st
        .db(move |c| Ok(accounts::login_candidate(c, &username)?))
        .await?;
    let ok = tokio::task::spawn_blocking(move || accounts::password_matches(&hash, &password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    if !ok {
        tracing::warn!(%ip, "a password confirmation failed");
        return Err(AppError::BadRequest(
            "that is not your current password".into(),
        ));
    }
    // Only this attempt is taken back: earlier failures (and device codes found taken) still
    // count, so a right password cannot wipe a run of wrong guesses.
    st.login_failures_account
        .forgive_last(&account_key(&user.username, ip));
    Ok(())
}

/// A new recovery code, shown once: with it (and only with it) the person can choose a new
/// password when they have forgotten theirs. Admins never see it and cannot reset passwords.
async fn make_recovery_code(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    CurrentUser(user): CurrentUser,
    Json(form): Json<PasswordForm>,
) -> AppResult<Json<serde_json::Value>> {
    confirm_password(&st, ip, &user, form.password).await?;
    let (code, hash) = accounts::new_recovery_code();
    let key = st.audit_key.clone();
    st.db(move |c| {
        accounts::set_recovery_hash(c, user.id, &hash)?;
        crate::store::audit::record(c, &key, &user.audit_id, "recovery-code", &user.audit_id)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "recovery_code": code.as_str() })))
}

#[derive(Deserialize)]
struct RecoverForm {
    username: String,
    recovery_code: zeroize::Zeroizing<String>,
    password: zeroize::Zeroizing<String>,
}

/// A forgotten password: the person's recovery code lets them choose a new one. The code is used
/// up.
async fn recover(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Json(form): Json<RecoverForm>,
) -> AppResult<Json<serde_json::Value>> {
    // A recovery code counts as a password against this address's limits. Not against the
    // account's limit from everywhere: it is a long random code nobody guesses in twenty tries,
    // and whoever needs it is likely on a browser they never signed in with.
    let now = clock::now();
    let username = form.username.trim().to_ascii_lowercase();
    let guess = Guess::count(&st, ip, &username, true, now)?;
    let hash = hash_new_password(form.password).await?;
    let key = st.audit_key.clone();
    st
        .db(move |c| {
            let user = accounts::recover(c, &username, &form.recovery_code, &hash)?;
            match &user {
                Some(u) => crate::store::audit::record(c, &key, &u.audit_id, "password-recovered", &u.audit_id)?,
                None => crate::store::audit::record(c, &key, "unknown", "recovery-failed", "")?,
            }
            Ok(user)
        })
        .await?
        .ok_or_else(|| {
            AppError::BadRequest(
                "wrong username or recovery code. The code was shown once on your Account page; if you have lost it, an admin cannot reset your password: ask them to set up a new account"
                    .into(),
            )
        })?;
    guess.succeeded(&st);
    Ok(Json(serde_json::json!({ "recovered": true })))
}

#[derive(Deserialize)]
struct NewPasswordForm {
    current: zeroize::Zeroizing<String>,
    new: zeroize::Zeroizing<String>,
}

/// A person changes their password (for instance the one they chose with a link an admin may
/// have seen). Their other sessions end.
async fn change_password(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    s: AnySession,
    Json(form): Json<NewPasswordForm>,
) -> AppResult<Json<serde_json::Value>> {
    confirm_password(&st, ip, &s.user, form.current).await?;
    let hash = hash_new_password(form.new).await?;
    let key = st.audit_key.clone();
    let (id, who, token) = (s.user.id, s.user.audit_id.clone(), s.token.clone());
    st.db(move |c| {
        accounts::set_own_password(c, id, &hash)?;
        accounts::end_other_sessions(c, id, &token)?;
        crate::store::audit::record(c, &key, &who, "password-changed", &who)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "changed": true })))
}

#[derive(Deserialize)]
struct DeviceCodeForm {
    code: zeroize::Zeroizing<String>,
    password: zeroize::Zeroizing<String>,
}

/// A teacher sets the code they type on a classroom device to start a recording. Only an HMAC
/// of it (keyed by the master key) is stored; admins cannot set or see it. It needs the password
/// (a stolen session must not set a code and record as the teacher), and codes that another
/// teacher has are limited per account (`AppState::code_taken`): nobody can try codes to find a
/// colleague's.
async fn set_device_code(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    CurrentUser(user): CurrentUser,
    Json(form): Json<DeviceCodeForm>,
) -> AppResult<Json<serde_json::Value>> {
    if !user.has(Role::Teacher) {
        return Err(AppError::Forbidden(
            "only teachers start recordings with a device code",
        ));
    }
    let code = zeroize::Zeroizing::new(form.code.trim().to_string());
    if !accounts::valid_code(&code) {
        return Err(AppError::BadRequest(
            "a device code is 4 to 8 digits".into(),
        ));
    }
    // Every try counts until it succeeds (see `AppState::code_taken`).
    if st.code_taken.attempt(&user.id, clock::now()).is_err() {
        return Err(AppError::TooManyRequests(
            "too many codes that cannot be used; wait 15 minutes and choose another",
        ));
    }
    if let Err(e) = confirm_password(&st, ip, &user, form.password).await {
        st.code_taken.forgive_last(&user.id);
        return Err(e);
    }
    let uid = user.id;
    let tag = st.vault(move |v| Ok(v.code_tag(&code))).await?;
    let key = st.audit_key.clone();
    let who = user.audit_id.clone();
    let taken = st
        .db(move |c| match accounts::set_code(c, user.id, &tag) {
            Ok(()) => {
                crate::store::audit::record(c, &key, &who, "set-code", &who)?;
                Ok(false)
            }
            Err(accounts::AccountError::CodeTaken) => {
                crate::store::audit::record(c, &key, &who, "set-code-taken", &who)?;
                Ok(true)
            }
            Err(accounts::AccountError::Db(e)) => Err(e.into()),
            Err(other) => Err(AppError::BadRequest(other.to_string())),
        })
        .await?;
    if taken {
        return Err(AppError::Conflict(
            "choose another code: that one cannot be used".into(),
        ));
    }
    st.code_taken.forgive_last(&uid);
    Ok(Json(serde_json::json!({ "set": true })))
}

/// Sends bytes written on a blocking thread to the response body, 64 KiB at a time. When the
/// browser goes away the next write fails, which stops the export.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(64 * 1024),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was cancelled")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Everything lessonlens holds about the signed-in person, as one ZIP archive (see
/// [`crate::ops::export`]), streamed as it is made. Audited.
async fn export_archive(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Response> {
    let audit_key = st.audit_key.clone();
    let who = user.audit_id.clone();
    st.db(move |c| {
        crate::store::audit::record(c, &audit_key, &who, "subject-access-export", &who)?;
        Ok(())
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let filename = format!("lessonlens-{}.zip", user.username);
    let now = clock::now();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(64 * 1024),
        };
        if let Err(e) =
            crate::ops::export::write_archive(&st.db, &st.vault, st.blobs.as_ref(), &user, now, out)
        {
            tracing::error!(error = %format!("{e:#}"), "a subject access export failed");
            // The browser sees a broken download rather than a short archive that looks whole.
            let _ = tx.blocking_send(Err(std::io::Error::other("the export failed")));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(super::attachment(
        "application/zip",
        &filename,
        axum::body::Body::from_stream(body),
    ))
}

#[derive(Deserialize)]
struct InviteForm {
    token: zeroize::Zeroizing<String>,
    password: zeroize::Zeroizing<String>,
}

/// A person opens their invitation link and chooses their password; then they sign in as usual.
/// Ten failures from one address in 15 minutes make it wait.
async fn accept_invite(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Json(form): Json<InviteForm>,
) -> AppResult<Json<serde_json::Value>> {
    let now = clock::now();
    if st.invite_failures.attempt(&ip, now).is_err() {
        return Err(AppError::TooManyRequests(
            "too many failed attempts from this address; wait 15 minutes and try again",
        ));
    }
    let hash = hash_new_password(form.password).await?;
    let key = st.audit_key.clone();
    let user = st
        .db(move |c| {
            let user = accounts::redeem_invite(c, &form.token, &hash, now)?;
            if let Some(u) = &user {
                crate::store::audit::record(c, &key, &u.audit_id, "invite-accepted", &u.audit_id)?;
            }
            Ok(user)
        })
        .await?
        .ok_or(AppError::Forbidden(
            "this invitation link is wrong, used or expired; ask an admin for a new one",
        ))?;
    st.invite_failures.forgive_last(&ip);
    Ok(Json(serde_json::json!({ "username": user.username })))
}

/// Starts setting up two-step sign-in: a new secret, shown once, to put in an authenticator app.
/// It counts only once a code from the app is confirmed.
async fn second_factor_begin(
    State(st): State<Shared>,
    s: AnySession,
) -> AppResult<Json<serde_json::Value>> {
    if second_factor_on(&st, s.user.id).await? {
        return Err(AppError::Conflict(
            "two-step sign-in is already on; if you lost your phone, an admin can reset it".into(),
        ));
    }
    let secret = second_factor::new_secret();
    let (url, base32) = second_factor::setup_details(&secret, &s.user.username);
    let (side, modules) = second_factor::qr_modules(&url);
    let id = s.user.id;
    st.vault(move |v| Ok(v.totp_begin(id, &secret)?)).await?;
    Ok(Json(serde_json::json!({
        "otpauth_url": url,
        "secret": base32,
        "qr": { "side": side, "modules": modules },
    })))
}

#[derive(Deserialize)]
struct ConfirmForm {
    code: zeroize::Zeroizing<String>,
    /// Turning it on ends the person's other sessions: a stolen session must not do that.
    password: zeroize::Zeroizing<String>,
}

/// Turns two-step sign-in on with a code from the app; a session that could only set it up now
/// counts in full, and the person's other sessions end.
async fn second_factor_confirm(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    s: AnySession,
    Json(form): Json<ConfirmForm>,
) -> AppResult<Json<serde_json::Value>> {
    confirm_password(&st, ip, &s.user, form.password).await?;
    let id = s.user.id;
    let stored = st
        .vault(move |v| Ok(v.totp(id)?))
        .await?
        .filter(|t| !t.confirmed)
        .ok_or_else(|| AppError::Conflict("start setting up two-step sign-in first".into()))?;
    let step = match second_factor::check(&stored, &s.user.username, &form.code, clock::now() as u64) {
        Check::Accepted(step) => step,
        _ => {
            return Err(AppError::BadRequest(
                "that is not the code the app shows now: check the secret was typed correctly and the phone's time is right".into(),
            ))
        }
    };
    st.vault(move |v| Ok(v.totp_accept(id, step)?)).await?;
    let audit_key = st.audit_key.clone();
    let token = s.token.clone();
    let who = s.user.audit_id.clone();
    st.db(move |c| {
        accounts::session_fully_signed_in(c, &token)?;
        accounts::end_other_sessions(c, id, &token)?;
        crate::store::audit::record(c, &audit_key, &who, "second-factor-on", &who)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "second_factor": true })))
}

async fn my_recordings(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<recordings::LibraryItem>>> {
    let list = st
        .db(move |c| {
            Ok(recordings::of_owner(c, user.id)?
                .iter()
                .map(|id| recordings::library_item(c, id, crate::domain::access::Access::Owner))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(Json(list))
}
