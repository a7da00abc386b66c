//! Talk time (issue 17), measured against a known answer: a lesson whose teacher and pupil turns
//! are known, spoken by espeak-ng, is fed to the device as its two microphones (the teacher's
//! close to the teacher; the room's hearing the pupils, with room noise). The device classes each
//! second; the server shows the result to the teacher and whom they share the lesson with, never
//! to an admin.

use lessonlens_e2e::{capture_json, wait_for, KillOnDrop, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 400\n";
const RATE: usize = 48_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Teacher,
    Pupils,
    /// The teacher and a pupil at once.
    Both,
}

/// `text` spoken by espeak-ng in `voice`, as 48 kHz samples in [-1, 1].
fn speak(dir: &Path, text: &str, voice: &str) -> Vec<f32> {
    let wav = dir.join("speech.wav");
    let spoke = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed by scripts/setup.sh");
    assert!(spoke.success());
    let bytes = std::fs::read(&wav).unwrap();
    // A RIFF file: the format chunk's rate, then the samples in the data chunk.
    let (mut at, mut rate, mut data) = (12, 22_050usize, &[][..]);
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match &bytes[at..at + 4] {
            b"fmt " => rate = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize,
            b"data" => {
                data = body;
                break;
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let samples: Vec<f32> = data
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    // Leading and trailing silence is not part of the turn.
    let first = samples.iter().position(|x| x.abs() > 0.01).unwrap_or(0);
    let last = samples.iter().rposition(|x| x.abs() > 0.01).unwrap_or(0);
    let samples = &samples[first..=last];
    (0..samples.len() * RATE / rate)
        .map(|i| {
            let x = i as f64 * rate as f64 / RATE as f64;
            let (j, f) = (x as usize, x.fract() as f32);
            let a = samples[j.min(samples.len() - 1)];
            let b = samples[(j + 1).min(samples.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

/// A lesson: its turns (who, from, to, in seconds of the feed) and its length.
struct Lesson {
    turns: Vec<(Who, f64, f64)>,
    seconds: f64,
}

impl Lesson {
    /// Who talks in the second starting at `from`: whoever talks for at least 0.3 s of it, or
    /// both if both do.
    fn truth(&self, from: f64) -> Option<Who> {
        let heard = |who: Who| -> f64 {
            self.turns
                .iter()
                .filter(|t| t.0 == who)
                .map(|&(_, start, end)| (end.min(from + 1.0) - start.max(from)).max(0.0))
                .sum()
        };
        match (heard(Who::Teacher), heard(Who::Pupils)) {
            (t, p) if t >= 0.3 && p >= 0.3 => Some(Who::Both),
            (t, _) if t >= 0.3 => Some(Who::Teacher),
            (_, p) if p >= 0.3 => Some(Who::Pupils),
            _ => None,
        }
    }
}

/// Writes the teacher's and the room's microphone for a lesson of known turns, as raw 48 kHz
/// mono S16LE files.
fn record_lesson(dir: &Path) -> Lesson {
    use Who::{Both, Pupils, Teacher};
    let script = [
        (Teacher, "Good morning everyone. Today we are going to add fractions whose bottom numbers are different.", 3.0),
        (Pupils, "Do we need to find a common denominator first?", 2.0),
        (Teacher, "Yes, exactly. What is the lowest common multiple of four and six?", 4.0),
        (Pupils, "Is it twelve?", 2.0),
        (Teacher, "Well done. So three quarters becomes nine twelfths. Write that down in your books now, and show your working.", 3.0),
        (Pupils, "So nine twelfths plus ten twelfths makes nineteen twelfths.", 2.0),
        // A pupil talks over the teacher.
        (Both, "Good, and now the next one is a little harder, so listen carefully.|But miss, what if the bottoms are the same?", 3.0),
        (Teacher, "That is right. Now try the next three questions on your own, and put your hand up if you get stuck.", 3.0),
    ];
    let (mut teacher, mut room) = (vec![0f32; 4 * RATE], vec![0f32; 4 * RATE]);
    let mut turns = Vec::new();
    for (who, text, pause) in script {
        let start = teacher.len();
        // Each voice in the turn, starting together (a `Both` turn's text is "teacher|pupil").
        let voices: Vec<(Who, &str)> = match who {
            Both => {
                let (t, p) = text.split_once('|').unwrap();
                vec![(Teacher, t), (Pupils, p)]
            }
            _ => vec![(who, text)],
        };
        for (who, text) in voices {
            let (voice, near, far) = match who {
                // The teacher's microphone is close to the teacher; the room's hears the pupils.
                Teacher => ("en-gb", 1.0, 0.25),
                _ => ("en-us+f3", 0.2, 0.9),
            };
            let speech = speak(dir, text, voice);
            let end = start + speech.len();
            if teacher.len() < end {
                teacher.resize(end, 0.0);
                room.resize(end, 0.0);
            }
            for (i, x) in speech.into_iter().enumerate() {
                teacher[start + i] += x * near;
                room[start + i] += x * far;
            }
            turns.push((who, start as f64 / RATE as f64, end as f64 / RATE as f64));
        }
        let silence = (pause * RATE as f64) as usize;
        teacher.extend(std::iter::repeat_n(0.0, silence));
        room.extend(std::iter::repeat_n(0.0, silence));
    }
    let seconds = teacher.len() as f64 / RATE as f64;
    // Room noise, and the feed runs on past the lesson so the device is stopped before it ends.
    let tail = 40 * RATE;
    teacher.extend(std::iter::repeat_n(0.0, tail));
    room.extend(std::iter::repeat_n(0.0, tail));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let write = |name: &str, samples: &[f32], noise_level: f32, noise: &mut dyn FnMut() -> f32| {
        let bytes: Vec<u8> = samples
            .iter()
            .flat_map(|x| {
                let v = (x + noise() * noise_level).clamp(-1.0, 1.0);
                ((v * 32767.0) as i16).to_le_bytes()
            })
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    write("teacher.raw", &teacher, 0.002, &mut noise);
    write("room.raw", &room, 0.02, &mut noise);
    Lesson { turns, seconds }
}

#[test]
fn talk_time_classes_a_known_lesson_and_only_those_who_may_watch_see_it() {
    let server = Server::start(&lessonlens_e2e::web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    server.add_user("ada", "ada-password", "admin");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let room = server.add_device("room-1");
    let dir = tempfile::tempdir().unwrap();
    let lesson = record_lesson(dir.path());
    let (teacher_mic, room_mic) = (
        dir.path().join("teacher.sock"),
        dir.path().join("room.sock"),
    );
    let (_service, config, _) = server.capture_service(
        dir.path(),
        &room,
        &format!(
            "{VIDEO}[audio]\nsource = \"shm\"\ndevice = \"{}\"\n[room_audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
            teacher_mic.display(),
            room_mic.display()
        ),
    );
    wait_for(
        &config,
        "the start-up checks",
        Duration::from_secs(30),
        |s| s["checks"].as_array().is_some_and(|c| !c.is_empty()),
    );

    // Both microphones play from one process, in step; the lesson starts a moment later.
    let (teacher_raw, room_raw) = (dir.path().join("teacher.raw"), dir.path().join("room.raw"));
    let desc = lessonlens_e2e::media::shared_recordings(&[
        (&teacher_raw, &teacher_mic),
        (&room_raw, &room_mic),
    ]);
    let fed = Instant::now();
    let _feed = KillOnDrop(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(desc.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while !(teacher_mic.exists() && room_mic.exists()) {
        assert!(
            fed.elapsed() < Duration::from_secs(10),
            "the microphones did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = fed.elapsed().as_secs_f64();
    let started = capture_json(&config, &["record", "start", "--code"], "2468\n");
    let began = fed.elapsed().as_secs_f64();
    let rec = started["recording"].as_str().unwrap().to_string();
    // Each microphone has its own meter (on the screen, and for the quiet-microphone watchdog).
    let s = wait_for(&config, "both meters", Duration::from_secs(20), |s| {
        s["levels"].as_array().is_some_and(|l| l.len() == 2)
    });
    let sources: Vec<&str> = s["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"microphone") && sources.contains(&"room-microphone"),
        "{sources:?}"
    );
    while fed.elapsed().as_secs_f64() < lesson.seconds + 1.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    capture_json(&config, &["record", "stop"], "");
    wait_for(&config, "uploaded", Duration::from_secs(60), |s| {
        s["state"] == "idle" && s["recordings_waiting"] == 0
    });

    let agent = server.agent();
    let alice = server.login(&agent, "alice", "alice-password");
    let (status, talk) = server.call("GET", &format!("/api/recordings/{rec}/talk"), &alice, None);
    assert_eq!(status, 200, "{talk}");
    assert_eq!(talk["microphones"], 2);
    let seconds: Vec<char> = talk["seconds"].as_str().unwrap().chars().collect();

    // The recording's second 0 began somewhere between asking and the answer (the device answers
    // once its pipeline plays); the best alignment within that window is scored.
    let mut best = (0usize, 0usize, 0.0);
    let mut offset = asked - 0.5;
    while offset <= began + 0.5 {
        let scored: Vec<(char, Option<Who>)> = seconds
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, offset + i as f64))
            .filter(|(_, from)| *from >= 0.0 && from + 1.0 <= lesson.seconds)
            .map(|(c, from)| (c, lesson.truth(from)))
            .collect();
        let right = scored
            .iter()
            .filter(|(c, truth)| {
                matches!(
                    (c, truth),
                    ('t', Some(Who::Teacher))
                        | ('p', Some(Who::Pupils))
                        | ('b', Some(Who::Both))
                        | ('-', None)
                )
            })
            .count();
        if right * best.1.max(1) > best.0 * scored.len().max(1) || best.1 == 0 {
            best = (right, scored.len(), offset);
        }
        offset += 0.1;
    }
    let (right, scored, offset) = best;
    let truth: String = (0..seconds.len())
        .map(|i| match lesson.truth(offset + i as f64) {
            Some(Who::Teacher) => 't',
            Some(Who::Pupils) => 'p',
            Some(Who::Both) => 'b',
            None => '-',
        })
        .collect();
    eprintln!(
        "talk time: {right} of {scored} seconds right ({:.1} %), offset {offset:.1} s\n device {}\n truth  {truth}",
        100.0 * right as f64 / scored as f64,
        talk["seconds"].as_str().unwrap()
    );
    assert!(
        scored as f64 >= lesson.seconds - 6.0,
        "only {scored} of {:.0} seconds were scored",
        lesson.seconds
    );
    assert!(
        right * 10 >= scored * 9,
        "{right} of {scored} seconds classed right: below 90 %"
    );
    // The teacher sees it under the timeline in Chromium; a click on it moves the player.
    let (out, _) = server.browser_script(
        "talk.mjs",
        "talk",
        &[
            ("LL_USER", "alice"),
            ("LL_PASSWORD", "alice-password"),
            ("LL_RECORDING", &rec),
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let totals = shown["totals"].as_str().unwrap();
    assert!(
        totals.contains("Teacher") && totals.contains("Pupils") && totals.contains("Wait"),
        "{shown}"
    );
    // A run for each of the lesson's turns, at least.
    assert!(shown["runs"].as_u64() >= Some(7), "{shown}");
    let at = shown["at"].as_f64().unwrap();
    assert!(
        (0.6 * lesson.seconds..=0.9 * lesson.seconds).contains(&at),
        "a click 3/4 along the band went to {at} s"
    );
    let summary = &talk["summary"];
    assert!(
        summary["teacher"].as_u64() > summary["pupils"].as_u64()
            && summary["pupils"].as_u64() > Some(0),
        "{summary}"
    );
    assert!(summary["waits"].as_u64() >= Some(2), "{summary}");
    let mean_wait = summary["mean_wait"].as_f64().unwrap();
    assert!((1.0..=5.0).contains(&mean_wait), "{summary}");
    assert!(summary["longest_teacher"].as_u64() >= Some(5), "{summary}");

    // Whoever may not watch the lesson does not see its talk time: an admin, a coach without a
    // share. A coach it is shared with does, and that is audited as a view.
    let carol = server.login(&agent, "carol", "carol-password");
    let ada = server.login(&agent, "ada", "ada-password");
    for who in [&carol, &ada] {
        let (status, body) = server.call("GET", &format!("/api/recordings/{rec}/talk"), who, None);
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = server.call(
        "POST",
        &format!("/api/recordings/{rec}/shares"),
        &alice,
        Some(serde_json::json!({ "username": "carol" })),
    );
    assert_eq!(status, 200, "{body}");
    let views = || -> Vec<i64> {
        lessonlens_e2e::column(
            &server.db(),
            "SELECT COUNT(*) FROM audit WHERE action = 'view' AND target = ?1",
            [&rec],
        )
    };
    let before = views()[0];
    let (status, seen) = server.call("GET", &format!("/api/recordings/{rec}/talk"), &carol, None);
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["seconds"], talk["seconds"]);
    assert_eq!(views(), [before + 1], "the coach's read is a view");
}

#[test]
fn talk_time_a_device_garbled_is_refused_with_the_reason_and_the_lesson_plays_on() {
    let server = Server::start(&lessonlens_e2e::web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let room = server.add_device("room-1");
    let (rec, _) = server.upload_recording(&room, "alice", 2);
    // A letter that is not a class.
    server.upload_talk(&room, "alice", rec, "tt?p");
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let (status, body) = server.call("GET", &format!("/api/recordings/{rec}/talk"), &alice, None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cannot be read"),
        "{body}"
    );
    let (status, _) = server.call("GET", &format!("/api/recordings/{rec}"), &alice, None);
    assert_eq!(status, 200);
    let playlist = server.get_text(&format!("/api/recordings/{rec}/playlist.m3u8"), &alice);
    assert!(playlist.contains("#EXTINF"), "{playlist}");
}
