//! Issue 2, "A recorded lesson, end to end": the real capture binary records from test sources,
//! seals and uploads to the real server over TLS; the teacher fetches the HLS playlist and every
//! segment, and the joined media has H.264 and AAC of the recorded length. Along the way no file on
//! the device or the server ever holds plaintext media, and another teacher cannot see the lesson.

use lessonlens_e2e::{record_once, scan_tree, web_dir, Server};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Not a multiple of the 2 s segment length, so the last segment is a partial one that only a
/// clean end-of-stream keeps.
const SECONDS: f64 = 9.0;

fn get(agent: &ureq::Agent, url: &str, cookie: Option<&str>) -> Result<ureq::Response, u16> {
    let mut req = agent.get(url);
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, _)) => Err(code),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn body(res: ureq::Response) -> Vec<u8> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut res.into_reader(), &mut v).unwrap();
    v
}

/// Demuxes an MP4 file with GStreamer; returns (video caps name, audio caps name, duration seconds).
fn analyse(file: &Path) -> (String, String, f64) {
    use gst::prelude::*;
    gst::init().unwrap();
    let desc = lessonlens_e2e::media::demux(file);
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let results: Vec<_> = ["v", "a"]
        .iter()
        .map(|name| {
            let sink = pipeline
                .by_name(name)
                .unwrap()
                .downcast::<gst_app::AppSink>()
                .unwrap();
            let state = Arc::new(Mutex::new((String::new(), gst::ClockTime::ZERO)));
            let s2 = state.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let mut st = s2.lock().unwrap();
                        if let Some(caps) = sample
                            .caps()
                            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                        {
                            st.0 = caps;
                        }
                        if let Some(b) = sample.buffer() {
                            let end =
                                b.pts().unwrap_or_default() + b.duration().unwrap_or_default();
                            st.1 = st.1.max(end);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            state
        })
        .collect();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("demux failed: {} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let v = results[0].lock().unwrap().clone();
    let a = results[1].lock().unwrap().clone();
    (v.0, a.0, v.1.max(a.1).nseconds() as f64 / 1e9)
}

#[test]
fn recorded_lesson_end_to_end() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    let enrolled = server.add_device("room-12");
    let device = tempfile::tempdir().unwrap();
    let spool = device.path().join("spool");
    let config = server.capture_config(
        device.path(),
        &enrolled,
        "[video]\nwidth = 640\nheight = 360\nbitrate_kbps = 1000\n",
    );

    // Scan the spool and the server's data folder for plaintext media while recording.
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = {
        let (stop, spool, data) = (stop.clone(), spool.clone(), server.data_dir());
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(Ordering::Acquire) {
                for dir in [&spool, &data] {
                    if let Some(hit) = scan_tree(dir) {
                        return Err(hit);
                    }
                }
                scans += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(scans)
        })
    };
    let report = record_once(&config, "alice", &SECONDS.to_string());
    stop.store(true, Ordering::Release);
    let scans = scanner
        .join()
        .unwrap()
        .unwrap_or_else(|hit| panic!("plaintext media on disk: {hit}"));
    assert!(
        scans > 10,
        "the scanner ran only {scans} times during the recording"
    );
    let rec = report["recording"].as_str().unwrap().to_string();
    assert!(report["uploaded"].as_bool().unwrap());
    for dir in [&spool, &server.data_dir()] {
        assert_eq!(scan_tree(dir), None, "plaintext media after the recording");
    }
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(
        left.is_empty(),
        "spool should be empty once every receipt arrived: {left:?}"
    );

    // The teacher sees the lesson, complete, and can fetch every segment.
    let agent = server.agent();
    let alice = server.login(&agent, "alice", "alice-password");
    let base = server.url();
    let list: serde_json::Value = get(&agent, &format!("{base}/api/recordings"), Some(&alice))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(list[0]["id"], rec.as_str());
    assert_eq!(list[0]["status"], "complete");
    let playlist = get(
        &agent,
        &format!("{base}/api/recordings/{rec}/playlist.m3u8"),
        Some(&alice),
    )
    .unwrap();
    assert_eq!(playlist.header("cache-control"), Some("no-store"));
    let playlist = playlist.into_string().unwrap();
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init.mp4\"") && playlist.contains("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let uris: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        uris.len() >= 4,
        "expected about {SECONDS} s of 2 s segments: {playlist}"
    );
    let mut media = body(
        get(
            &agent,
            &format!("{base}/api/recordings/{rec}/init.mp4"),
            Some(&alice),
        )
        .unwrap(),
    );
    for uri in &uris {
        let res = get(
            &agent,
            &format!("{base}/api/recordings/{rec}/{uri}"),
            Some(&alice),
        )
        .unwrap();
        assert_eq!(res.header("cache-control"), Some("no-store"));
        media.extend(body(res));
    }
    assert_eq!(
        report["segments"].as_u64().unwrap() as usize,
        uris.len(),
        "every sealed segment is in the playlist"
    );
    // Positive control for the scanner: the decrypted media is exactly what it must find.
    assert!(
        lessonlens_e2e::find_plaintext_media(&media).is_some(),
        "the scanner misses real media"
    );
    // The poster frame: sealed on both disks (the scans above), a JPEG once decrypted for the
    // owner (the scanner finds it), listed in the library, and not in the playlist.
    assert_eq!(list[0]["poster"], true);
    let poster = get(
        &agent,
        &format!("{base}/api/recordings/{rec}/poster.jpg"),
        Some(&alice),
    )
    .unwrap();
    assert_eq!(poster.header("content-type"), Some("image/jpeg"));
    let poster = body(poster);
    assert_eq!(
        lessonlens_e2e::find_plaintext_media(&poster).map(|h| h.1),
        Some("JPEG image")
    );
    assert!(!playlist.contains(&lessonlens_proto::POSTER_INDEX.to_string()));
    // The owner's download is the same lesson as one file, byte for byte.
    let download = get(
        &agent,
        &format!("{base}/api/recordings/{rec}/download.mp4"),
        Some(&alice),
    )
    .unwrap();
    assert!(download
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment; filename=\"lesson-")));
    assert!(
        body(download) == media,
        "the download differs from the played segments"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let joined = out_dir.path().join("joined.mp4");
    std::fs::write(&joined, &media).unwrap();
    let (video, audio, duration) = analyse(&joined);
    assert_eq!(video, "video/x-h264");
    assert_eq!(audio, "audio/mpeg");
    assert!(
        (duration - SECONDS).abs() <= 1.0,
        "recorded {SECONDS} s but the media lasts {duration:.3} s"
    );

    // A real client nobody here wrote: Debian's ffprobe (and so mpv and every ffmpeg-based tool)
    // reads the playlist, the init segment and the `.m4s` media segments (issue 14.8; it refused
    // segment names without a known extension).
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-headers"])
        .arg(format!("Cookie: {alice}\r\n"))
        .args([
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(format!("{base}/api/recordings/{rec}/playlist.m3u8"))
        .output()
        .expect("ffprobe is installed by scripts/setup.sh");
    let text = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        probe.status.success()
            && text.contains("codec_name=h264")
            && text.contains("codec_name=aac"),
        "ffprobe: {text}{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // In a real browser the teacher finds the lesson and it plays.
    let shots = server.watch_in_browser("alice", "alice-password", &rec, 2.0, "");
    assert!(shots.join("recording.png").exists());

    // Another teacher gets 404 for everything of this recording; nobody signed in gets 401.
    let bob = server.login(&agent, "bob", "bob-password");
    for path in ["playlist.m3u8", "init.mp4", "segments/1"] {
        assert_eq!(
            get(
                &agent,
                &format!("{base}/api/recordings/{rec}/{path}"),
                Some(&bob)
            )
            .err(),
            Some(404),
            "{path}"
        );
        assert_eq!(
            get(&agent, &format!("{base}/api/recordings/{rec}/{path}"), None).err(),
            Some(401),
            "{path}"
        );
    }
    let bobs: serde_json::Value = get(&agent, &format!("{base}/api/recordings"), Some(&bob))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(bobs.as_array().unwrap().len(), 0);
}
