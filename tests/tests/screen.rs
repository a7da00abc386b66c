//! The classroom device a teacher uses: its screen (in Debian's Chromium, by touch, against the
//! real capture service and server), its record button (real `input_event` records through the
//! service's reader) and its light (a folder laid out like `/sys/class/leds`).

use gst::prelude::*;
use lessonlens_e2e::{capture_json, run_with_stdin, share, wait_for, web_dir, Device, Server};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn wait_state(config: &Path, want: &str, seconds: u64) -> serde_json::Value {
    wait_for(
        config,
        &format!("never {want}"),
        Duration::from_secs(seconds),
        |s| s["state"] == want,
    )
}

/// A school server with teacher alice (device code 2468) and the enrolled device room-12, and a
/// folder for the device.
fn school() -> (Server, Device, tempfile::TempDir) {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let device = server.add_device("room-12");
    (server, device, tempfile::tempdir().unwrap())
}

/// A microphone (over `shm`) whose tone switches between quiet (-46 dBFS) and loud (-6 dBFS)
/// every 1.5 s, in this process, until dropped.
struct Tone {
    pipeline: gst::Element,
    done: Arc<AtomicBool>,
}

impl Tone {
    fn start(socket: &Path) -> Tone {
        gst::init().unwrap();
        let pipeline =
            gst::parse::launch(&lessonlens_e2e::media::shared_source("tone", socket)).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let tone = pipeline
            .downcast_ref::<gst::Bin>()
            .unwrap()
            .by_name("tone")
            .unwrap();
        let stop = done.clone();
        std::thread::spawn(move || {
            let mut loud = false;
            while !stop.load(Ordering::Acquire) {
                loud = !loud;
                tone.set_property("volume", if loud { 0.5f64 } else { 0.005 });
                std::thread::sleep(Duration::from_millis(1500));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the tone did not start sharing");
            std::thread::sleep(Duration::from_millis(50));
        }
        Tone { pipeline, done }
    }
}

impl Drop for Tone {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

const SMALL_VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n";

#[test]
fn a_teacher_records_a_lesson_from_the_device_screen_and_watches_it() {
    let server = Server::start(&web_dir());
    let display = "Alice Example";
    let added = server.cli(
        &[
            "user",
            "add",
            "alice",
            "--display-name",
            display,
            "--role",
            "teacher",
        ],
        "alice-password\n",
    );
    assert!(added.status.success());
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let device = server.add_device("room-12");
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("mic.sock");
    let _tone = Tone::start(&mic);
    let (_service, config, port) = server.capture_service(
        dir.path(),
        &device,
        &format!(
            "demo_mode = false\n{SMALL_VIDEO}[audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
            mic.display()
        ),
    );
    // Without demo mode, nothing on the device records in a teacher's name without their code.
    let by_name = run_with_stdin(
        "lessonlens-capture",
        &config,
        &["record", "start", "--teacher", "alice"],
        "",
    );
    assert!(!by_name.status.success());
    assert!(
        String::from_utf8_lossy(&by_name.stderr).contains("types their code"),
        "{}",
        String::from_utf8_lossy(&by_name.stderr)
    );

    let (out, _) = server.browser_script(
        "device.mjs",
        "device-lesson",
        &[
            ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
            ("LL_STEPS", "lesson"),
            ("LL_TEACHER_NAME", display),
        ],
    );
    let rec = out
        .lines()
        .find_map(|l| l.strip_prefix("recording "))
        .unwrap_or_else(|| panic!("no recording id in:\n{out}"))
        .to_string();
    // The lesson is the teacher's, whole, and plays in the web app.
    assert!(server.segments_and_clean_stop(&rec).1);
    server.watch_in_browser("alice", "alice-password", &rec, 3.0, "device-lesson-watch");
}

#[test]
fn the_screen_warns_of_a_silent_microphone_and_says_when_the_camera_goes() {
    let (server, device, dir) = school();
    let (cam, mic) = (dir.path().join("cam.sock"), dir.path().join("mic.sock"));
    let camera = share("camera", &cam);
    let _silence = share("silence", &mic);
    let (_service, config, port) = server.capture_service(
        dir.path(),
        &device,
        &format!(
            "[watchdog]\nquiet_seconds = 3\n[video]\nsource = \"shm\"\ndevice = \"{}\"\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n\
             [audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
            cam.display(),
            mic.display()
        ),
    );
    let metrics = |port: u16| {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    assert!(metrics(port).contains("lessonlens_watchdog_warning{kind=\"microphone_silent\"} 0"));
    let pid = camera.0.id().to_string();
    let (_, _) = server.browser_script(
        "device.mjs",
        "device-faults",
        &[
            ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
            ("LL_STEPS", "faults"),
            ("LL_CAMERA_PID", &pid),
            // The largest screen the device supports; the lesson runs on the smallest.
            ("LL_WIDTH", "1920"),
            ("LL_HEIGHT", "1080"),
        ],
    );
    let s = capture_json(&config, &["status"], "");
    assert_eq!(s["state"], "idle", "{s}");
    assert!(s["last_error"].as_str().unwrap().contains("camera"), "{s}");
    // What was recorded before the camera went is kept and uploaded.
    let rec = s["last_recording"]["recording"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.segments_and_clean_stop(&rec).0 == 0 {
        assert!(Instant::now() < deadline, "nothing of the lesson arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_silence_warning_reaches_status_metrics_and_the_admins_device_list() {
    let (server, device, dir) = school();
    server.add_user("ada", "ada-password", "admin");
    let mic = dir.path().join("mic.sock");
    let _silence = share("silence", &mic);
    let (_service, config, port) = server.capture_service(
        dir.path(),
        &device,
        &format!(
            "[watchdog]\nquiet_seconds = 2\n{SMALL_VIDEO}[audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
            mic.display()
        ),
    );
    capture_json(&config, &["record", "start", "--teacher", "alice"], "");
    let s = wait_for(&config, "no warning", Duration::from_secs(30), |s| {
        !s["warnings"].as_array().unwrap().is_empty()
    });
    assert_eq!(s["state"], "recording", "a warning does not end the lesson");
    assert_eq!(s["warnings"][0]["kind"], "microphone_silent");
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("lessonlens_watchdog_warning{kind=\"microphone_silent\"} 1"),
        "{metrics}"
    );
    // The admin's device list shows it within a few seconds, without anything of the lesson.
    let agent = server.agent();
    let cookie = server.login(&agent, "ada", "ada-password");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let devices = server.get_json("/api/admin/devices", &cookie);
        let text = devices.to_string();
        if text.contains("has sent no sound at all") {
            assert!(!text.contains("alice"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin's list has no warning: {text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    capture_json(&config, &["record", "stop"], "");
}

#[test]
fn offline_the_screen_records_to_the_schools_key_and_says_so() {
    let (mut server, device, dir) = school();
    let (_service, config, port) = server.capture_service(dir.path(), &device, SMALL_VIDEO);
    // The device fetches the school's unassigned key when it starts; then the server goes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !device.identity.join("unassigned.pub").exists() {
        assert!(
            Instant::now() < deadline,
            "the device never fetched the school's key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    server.browser_script(
        "device.mjs",
        "device-offline",
        &[
            ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
            ("LL_STEPS", "offline"),
        ],
    );
    let s = capture_json(&config, &["status"], "");
    assert_eq!(s["recordings_waiting"], 1, "{s}");
}

/// Samples the LED's brightness every 20 ms for `ms`: the values seen and how often it changed.
fn watch_led(brightness: &Path, ms: u64) -> (Vec<String>, usize) {
    let (mut seen, mut changes, mut last) = (Vec::new(), 0, None);
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        let v = std::fs::read_to_string(brightness)
            .unwrap()
            .trim()
            .to_string();
        // A plain file is empty for a moment while it is rewritten (a sysfs attribute never is).
        if v.is_empty() {
            continue;
        }
        if last.as_ref().is_some_and(|l| *l != v) {
            changes += 1;
        }
        if !seen.contains(&v) {
            seen.push(v.clone());
        }
        last = Some(v);
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.sort();
    (seen, changes)
}

#[test]
fn the_button_pauses_resumes_and_stops_and_the_light_tells_the_truth() {
    let (server, device, dir) = school();
    let fifo_path = lessonlens_e2e::button_fifo(dir.path());
    let led = dir.path().join("leds/lessonlens:red:record");
    std::fs::create_dir_all(&led).unwrap();
    // Lit before the service starts: it is the service that turns the light off.
    std::fs::write(led.join("brightness"), "255\n").unwrap();
    std::fs::write(led.join("max_brightness"), "255\n").unwrap();
    let brightness = led.join("brightness");
    let (_service, config, _) = server.capture_service(
        dir.path(),
        &device,
        &format!(
            "demo_mode = false\n[button]\ndevice = \"{}\"\nkey = \"KEY_F13\"\nlong_press_ms = 1000\n\
             [light]\nleds = [\"lessonlens:red:record\"]\nleds_dir = \"{}\"\n{SMALL_VIDEO}",
            fifo_path.display(),
            dir.path().join("leds").display()
        ),
    );
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo_path)
        .unwrap();
    let f13 = lessonlens_capture::config::key_code("KEY_F13").unwrap();

    // Idle: the light is off, and the button only says how to start.
    lessonlens_e2e::press_button(&mut fifo, f13, 1_000, 100);
    let s = wait_for(
        &config,
        "no notice after a press while idle",
        Duration::from_secs(5),
        |s| {
            s["notice"]
                .as_str()
                .is_some_and(|n| n.contains("type your code"))
        },
    );
    assert_eq!(s["state"], "idle");
    assert_eq!(watch_led(&brightness, 300).0, ["0"]);

    // Started with the code; "starting" until the first segment is sealed, and the light stays
    // off until then.
    capture_json(&config, &["record", "start", "--code"], "2468\n");
    let s = capture_json(&config, &["status"], "");
    assert_eq!(s["state"], "starting", "{s}");
    assert_eq!(std::fs::read_to_string(&brightness).unwrap().trim(), "0");
    wait_state(&config, "recording", 20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        watch_led(&brightness, 600),
        (vec!["255".to_string()], 0),
        "solid while recording"
    );

    // A short press pauses: a slow blink (twice a second, not four times).
    lessonlens_e2e::press_button(&mut fifo, f13, 5_000, 150);
    wait_state(&config, "paused", 5);
    let (seen, changes) = watch_led(&brightness, 2200);
    assert_eq!(seen, ["0", "255"], "blinks while paused");
    assert!(
        (3..=6).contains(&changes),
        "a slow blink changes about 4 times in 2.2 s, saw {changes}"
    );

    // Another resumes, "starting" again until the new pipeline's first segment is sealed; a
    // long press stops, and the lesson is kept.
    lessonlens_e2e::press_button(&mut fifo, f13, 8_000, 150);
    let resumed = wait_for(
        &config,
        "the button did not resume",
        Duration::from_secs(5),
        |s| s["state"] != "paused",
    );
    assert_eq!(resumed["state"], "starting", "{resumed}");
    wait_state(&config, "recording", 10);
    std::thread::sleep(Duration::from_millis(2500));
    lessonlens_e2e::press_button(&mut fifo, f13, 12_000, 1_500);
    let s = wait_state(&config, "idle", 20);
    let rec = s["last_recording"]["recording"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(watch_led(&brightness, 400).0, ["0"], "off once stopped");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.segments_and_clean_stop(&rec).1 {
        assert!(
            Instant::now() < deadline,
            "the stopped lesson did not arrive whole"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_device_the_server_no_longer_accepts_says_so_in_plain_words() {
    let (server, device, dir) = school();
    let (_service, config, _) = server.capture_service(dir.path(), &device, SMALL_VIDEO);
    wait_state(&config, "idle", 5);
    assert!(server
        .cli(&["device", "revoke", "room-12"], "")
        .status
        .success());
    let refused = lessonlens_e2e::run_with_stdin(
        "lessonlens-capture",
        &config,
        &["record", "start", "--code"],
        "2468\n",
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("no longer accepts this device") && why.contains("enrol this device again"),
        "{why}"
    );
    let s = wait_for(
        &config,
        "the screen was never told",
        Duration::from_secs(10),
        |s| s["device_refused"].is_string(),
    );
    assert_eq!(s["state"], "idle");
}

/// The status of a control API request, refused or not.
fn status_of(res: Result<ureq::Response, ureq::Error>) -> u16 {
    match res {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("the control API did not answer: {e}"),
    }
}

#[test]
fn the_control_api_answers_its_own_screen_and_nobody_elses() {
    let (server, device, dir) = school();
    let (_service, config, port) = server.capture_service(dir.path(), &device, SMALL_VIDEO);
    let base = format!("http://127.0.0.1:{port}");
    let start = format!("{base}/v1/record/start");
    // Another web page's command is refused, even with a JSON body, and so is reading across
    // sites (the status, the preview).
    let foreign = ureq::post(&start)
        .set("origin", "http://evil.example")
        .send_json(serde_json::json!({ "code": "2468" }));
    assert_eq!(status_of(foreign), 403);
    let cross_site = ureq::get(&format!("{base}/v1/preview.jpg"))
        .set("sec-fetch-site", "cross-site")
        .call();
    assert_eq!(status_of(cross_site), 403);
    // The screen itself may not be framed or embedded by another page.
    let page = ureq::get(&format!("{base}/")).call().unwrap();
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        page.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));
    // Bad input: neither or both of a teacher and a code, a body that is not JSON, a code that
    // is not one.
    for body in [
        serde_json::json!({}),
        serde_json::json!({ "teacher": "alice", "code": "2468" }),
    ] {
        assert_eq!(
            status_of(ureq::post(&start).send_json(&body)),
            400,
            "{body}"
        );
    }
    let form = ureq::post(&start)
        .set("content-type", "application/x-www-form-urlencoded")
        .send_string("code=2468");
    assert!((400..500).contains(&status_of(form)));
    let not_a_code = ureq::post(&start).send_json(serde_json::json!({ "code": "12ab" }));
    assert_eq!(status_of(not_a_code), 422);
    assert_eq!(capture_json(&config, &["status"], "")["state"], "idle");
    // Without a recording there is no preview at all.
    assert_eq!(
        status_of(ureq::get(&format!("{base}/v1/preview.jpg")).call()),
        204
    );
    // At most four screens listen at once; a fifth is refused until one goes.
    let events = format!("{base}/v1/events");
    let mut open: Vec<ureq::Response> =
        (0..4).map(|_| ureq::get(&events).call().unwrap()).collect();
    assert_eq!(status_of(ureq::get(&events).call()), 429);
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(ureq::get(&events).timeout(Duration::from_secs(5)).call()) != 200 {
        assert!(
            Instant::now() < deadline,
            "a closed stream was never given back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
