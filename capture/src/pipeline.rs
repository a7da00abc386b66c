//! The GStreamer pipeline: sources -> H.264 + AAC -> fragmented MP4 (isofmp4mux) -> appsink.
//!
//! ```text
//!  videotestsrc|v4l2src|shmsrc -> convert/scale -> I420 -> [timeoverlay] -> tee -> queue -> x264enc
//!      -> video/x-h264,profile=high -> h264parse config-interval=-1 -> queue --\
//!                                                  isofmp4mux fragment-duration=N s -> appsink
//!  audiotestsrc|alsasrc|pulsesrc|shmsrc -> convert/resample -> AAC encoder -> aacparse -> queue --/
//!  tee -> valve (first frame only) -> videoscale -> 480 px wide -> jpegenc -> appsink name=poster
//! ```
//! Keyframes are forced every `segment_seconds` with scene-cut keyframes off, so every fragment
//! starts on a keyframe and has the same length. Each appsink sample is one fragment (a buffer
//! list); the first one also carries the init segment (`ftyp` + `moov`), flagged HEADER|DISCONT.

use crate::config::Config;
use crate::live::{Level, Live};
use anyhow::{anyhow, bail, Context};
use gst::prelude::*;
use std::sync::Arc;

/// One piece of fMP4 output, still plaintext, only ever held in memory.
#[derive(Debug)]
pub enum Fragment {
    /// The initialisation segment (`ftyp` + `moov`).
    Init(Vec<u8>),
    /// A media fragment (`moof` + `mdat`...), with its timing relative to the recording's start.
    Media {
        bytes: Vec<u8>,
        start_us: u64,
        duration_us: u64,
    },
    /// The poster frame: the first frame as a small JPEG, for the library.
    Poster(Vec<u8>),
    /// The lesson's talk time (`lessonlens_proto::talk`, as JSON), sent once as it ends.
    Talk(Vec<u8>),
}

/// The built pipeline, plus which encoders it uses (reported in logs and status).
pub struct Capture {
    pub pipeline: gst::Pipeline,
    pub video_encoder: &'static str,
    pub audio_encoder: &'static str,
    live: Arc<Live>,
}

/// Registers the statically linked fMP4 muxer and initialises GStreamer. Safe to call twice.
pub fn init() -> anyhow::Result<()> {
    gst::init().context("GStreamer failed to initialise")?;
    gstfmp4::plugin_register_static().context("cannot register the fmp4 muxer plugin")?;
    Ok(())
}

/// H.264 encoders in order of preference: hardware first, then x264, then OpenH264.
pub const VIDEO_ENCODERS: [&str; 7] = [
    "nvh264enc",
    "vah264enc",
    "vaapih264enc",
    "qsvh264enc",
    "v4l2h264enc",
    "x264enc",
    "openh264enc",
];

/// The short pipeline [`probe_encoder`] runs.
pub fn probe_description(encoder: &str) -> String {
    format!(
        "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! {encoder} ! h264parse ! fakesink"
    )
}

/// True when a short pipeline really encodes a few frames with `encoder` (a hardware encoder's
/// element can exist while the hardware or its driver does not).
pub fn probe_encoder(encoder: &str) -> bool {
    if gst::ElementFactory::find(encoder).is_none() {
        return false;
    }
    let Ok(pipeline) = gst::parse::launch(&probe_description(encoder)) else {
        return false;
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        let _ = pipeline.set_state(gst::State::Null);
        return false;
    }
    let bus = pipeline.bus().expect("pipeline has a bus");
    let ok = matches!(
        bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Eos, gst::MessageType::Error]
        )
        .map(|m| m.type_()),
        Some(gst::MessageType::Eos)
    );
    let _ = pipeline.set_state(gst::State::Null);
    ok
}

/// The first encoder in [`VIDEO_ENCODERS`] that passes [`probe_encoder`].
pub fn pick_video_encoder() -> anyhow::Result<&'static str> {
    for name in VIDEO_ENCODERS {
        if probe_encoder(name) {
            return Ok(name);
        }
        if gst::ElementFactory::find(name).is_some() {
            tracing::warn!(
                encoder = name,
                "encoder present but its probe failed; trying the next"
            );
        }
    }
    Err(anyhow!(
        "no working H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc) or gstreamer1.0-plugins-bad (openh264enc)"
    ))
}

/// AAC encoders in order of preference.
pub const AUDIO_ENCODERS: [&str; 3] = ["avenc_aac", "voaacenc", "fdkaacenc"];

pub fn pick_audio_encoder() -> anyhow::Result<&'static str> {
    AUDIO_ENCODERS
        .into_iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
        .ok_or_else(|| anyhow!("no AAC encoder found: install gstreamer1.0-libav (avenc_aac)"))
}

/// Encoder settings: the bitrate, a keyframe every segment and no scene-cut keyframes, so every
/// fragment starts on a keyframe and has the same length. Property names differ per encoder.
fn video_encoder_desc(name: &str, c: &Config) -> String {
    let gop = c.video.fps * c.segment_seconds;
    let kbps = c.video.bitrate_kbps;
    match name {
        "x264enc" => format!(
            "x264enc tune=zerolatency speed-preset=veryfast bitrate={kbps} key-int-max={gop} option-string=scenecut=0"
        ),
        "nvh264enc" => format!("nvh264enc bitrate={kbps} gop-size={gop} zerolatency=true bframes=0"),
        "vah264enc" => format!("vah264enc bitrate={kbps} key-int-max={gop} b-frames=0"),
        "vaapih264enc" => format!("vaapih264enc bitrate={kbps} keyframe-period={gop} max-bframes=0"),
        "qsvh264enc" => format!("qsvh264enc bitrate={kbps} gop-size={gop} b-frames=0"),
        "v4l2h264enc" => format!(
            "v4l2h264enc extra-controls=\"controls,video_bitrate={},h264_i_frame_period={gop}\"",
            kbps * 1000
        ),
        _ => format!("openh264enc bitrate={} gop-size={gop} scene-change-detection=false", kbps * 1000),
    }
}

/// The camera, up to raw frames of the configured size (named `camera`, for errors and checks).
pub fn video_source(c: &Config) -> String {
    let v = &c.video;
    let raw = format!(
        "video/x-raw,width={},height={},framerate={}/1",
        v.width, v.height, v.fps
    );
    match v.source.as_str() {
        "v4l2" => format!("v4l2src name=camera device={} ! videoconvert ! videoscale ! videorate ! {raw}", v.device),
        "shm" => format!(
            "shmsrc name=camera socket-path={} is-live=true do-timestamp=true ! {raw},format=I420 ! videorate",
            v.device
        ),
        _ => format!(
            "videotestsrc name=camera is-live=true pattern=smpte ! {raw} ! timeoverlay halignment=center valignment=center font-desc=\"Sans 48\""
        ),
    }
}

/// The microphones' element names, for errors and checks: the teacher's (or the only one), and
/// the room's.
pub const MICROPHONES: [&str; 2] = ["microphone", "room-microphone"];

/// Microphone `n` (0: `audio`, 1: `room_audio`) up to raw audio, named [`MICROPHONES`]`[n]`.
pub fn audio_source(a: &crate::config::AudioConfig, n: usize) -> String {
    let name = MICROPHONES[n.min(1)];
    let device = &a.device;
    match a.source.as_str() {
        "alsa" if !device.is_empty() => format!("alsasrc name={name} device={device}"),
        "alsa" => format!("alsasrc name={name}"),
        "pulse" if !device.is_empty() => format!("pulsesrc name={name} device={device}"),
        "pulse" => format!("pulsesrc name={name}"),
        "shm" => format!(
            "shmsrc name={name} socket-path={device} is-live=true do-timestamp=true ! audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1"
        ),
        // Two test microphones are told apart by their pitch.
        _ => format!(
            "audiotestsrc name={name} is-live=true wave=sine freq={} volume=0.1",
            440 + 220 * n
        ),
    }
}

/// The microphones the config names: the teacher's (or the only one), then the room's.
pub fn microphones(c: &Config) -> Vec<&crate::config::AudioConfig> {
    std::iter::once(&c.audio).chain(&c.room_audio).collect()
}

/// The sound: each microphone at its gain with its own meter (`meter0`, `meter1`), heard by talk
/// time's detector (appsinks `ear0`, `ear1`, see `crate::talk`), mixed when there are two, and
/// encoded into the muxer. Without lessonlens' `own` work (the meters and the detector), only
/// captured, mixed and encoded.
fn audio_description(c: &Config, audio_encoder: &str, own: bool) -> String {
    let mics = microphones(c);
    let mut desc = String::new();
    for (n, a) in mics.iter().enumerate() {
        desc += &format!(
            "{} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! volume volume={} ",
            audio_source(a, n),
            a.gain
        );
        // Each microphone has its own meter, so the screen shows both and the watchdog notices
        // either one going quiet (the mix would hide it).
        if own {
            desc += &format!("! level name=meter{n} interval={LEVEL_INTERVAL_NS} ");
        }
        let onward = if mics.len() > 1 {
            "audioconvert ! queue ! mix. "
        } else {
            ""
        };
        if own && c.talk.enabled {
            // Each branch converts for itself: the detector takes 16-bit samples, the mixer and
            // the encoder floats. The detector's branch has no queue (no thread of its own): it
            // runs on the microphone's thread, at the lowest resampling quality, which is plenty
            // for telling voice from silence.
            desc += &format!(
                "! tee name=heard{n} heard{n}. ! audioconvert ! audioresample quality=0 \
                 ! audio/x-raw,format=S16LE,rate={rate},channels=1 \
                 ! appsink name=ear{n} sync=false async=false heard{n}. ! {onward}",
                rate = crate::talk::RATE
            );
        } else if !onward.is_empty() {
            desc += &format!("! {onward}");
        }
    }
    if mics.len() > 1 {
        desc += "audiomixer name=mix ! audio/x-raw,rate=48000,channels=1 ";
    }
    if !desc.ends_with("! ") {
        desc += "! ";
    }
    desc + &format!("audioconvert ! {audio_encoder} ! aacparse ! queue ! mux.")
}

/// The device screen's camera preview: this wide, at most this many frames a second.
const PREVIEW_WIDTH: u32 = 320;
const PREVIEW_FPS: u32 = 2;
/// How often the `level` element reports the microphone's loudness (10 times a second).
const LEVEL_INTERVAL_NS: u64 = 100_000_000;

/// The pipeline description. Kept as one string so the whole graph can be read (and pasted into
/// `gst-launch-1.0` for comparison benchmarks).
pub fn describe(c: &Config, video_encoder: &str, audio_encoder: &str) -> String {
    let v = &c.video;
    let video_src = video_source(c);
    let audio = audio_description(c, audio_encoder, true);
    // The poster branch lets one frame through (see `build`) and is scaled to 480 px wide. The
    // preview branch is closed unless the device screen is showing it (see `watch_frames`).
    let poster_height = (480 * v.height / v.width.max(1)).max(2) & !1;
    let preview_height = (PREVIEW_WIDTH * v.height / v.width.max(1)).max(2) & !1;
    format!(
        "{video_src} ! videoconvert ! video/x-raw,format=I420 ! tee name=frames \
         frames. ! queue ! {venc} ! video/x-h264,profile=high \
         ! h264parse config-interval=-1 ! queue ! mux. \
         frames. ! valve name=postergate drop-mode=forward-sticky-events ! videoscale \
         ! video/x-raw,width=480,height={poster_height} ! jpegenc quality=80 \
         ! appsink name=poster sync=false async=false \
         frames. ! valve name=previewgate drop=true drop-mode=forward-sticky-events \
         ! videorate drop-only=true max-rate={PREVIEW_FPS} ! videoscale method=nearest-neighbour \
         ! video/x-raw,width={PREVIEW_WIDTH},height={preview_height} ! jpegenc quality=60 \
         ! appsink name=preview sync=false async=false max-buffers=1 drop=true \
         {audio} \
         isofmp4mux name=mux fragment-duration={frag} ! appsink name=sink sync=false buffer-list=true",
        venc = video_encoder_desc(video_encoder, c),
        frag = u64::from(c.segment_seconds) * 1_000_000_000,
    )
}

/// The same capture without lessonlens' own work (the poster frame, the screen's preview, the
/// meter and picture watchdog, talk time, sealing): the same sources, conversions and encoder
/// settings into GStreamer's own fragmented MP4 muxer and a file, for `gst-launch-1.0`. What the
/// capture benchmark compares against.
pub fn describe_bare(
    c: &Config,
    video_encoder: &str,
    audio_encoder: &str,
    file: &std::path::Path,
) -> String {
    format!(
        "{video_src} ! videoconvert ! video/x-raw,format=I420 ! queue ! {venc} \
         ! video/x-h264,profile=high ! h264parse config-interval=-1 ! queue ! mux. \
         {audio} \
         mp4mux name=mux fragment-duration={frag_ms} ! filesink location={file}",
        video_src = video_source(c),
        venc = video_encoder_desc(video_encoder, c),
        audio = audio_description(c, audio_encoder, false),
        frag_ms = u64::from(c.segment_seconds) * 1000,
        file = file.display(),
    )
}

/// The description `build` would use with this config, with the encoders it would pick.
pub fn describe_for(c: &Config) -> anyhow::Result<String> {
    init()?;
    Ok(describe(c, pick_video_encoder()?, pick_audio_encoder()?))
}

/// [`describe_bare`] with the encoders `build` would pick.
pub fn describe_bare_for(c: &Config, file: &std::path::Path) -> anyhow::Result<String> {
    init()?;
    Ok(describe_bare(
        c,
        pick_video_encoder()?,
        pick_audio_encoder()?,
        file,
    ))
}

/// Builds the pipeline and connects its appsink to `out` (which returns false once nobody listens).
/// The callback only copies bytes and hands them on; sealing happens on another thread so encoding never waits on crypto or disk.
pub fn build(
    c: &Config,
    live: &Arc<Live>,
    talk: Option<&crate::talk::Shared>,
    out: impl Fn(Fragment) -> bool + Send + Sync + 'static,
) -> anyhow::Result<Capture> {
    let video_encoder = pick_video_encoder()?;
    let audio_encoder = pick_audio_encoder()?;
    let desc = describe(c, video_encoder, audio_encoder);
    tracing::info!(
        video_encoder,
        audio_encoder,
        "building capture pipeline (encoder chosen by probing)"
    );
    let pipeline = gst::parse::launch(&desc)
        .with_context(|| format!("cannot build the capture pipeline: {desc}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("pipeline description did not produce a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("pipeline has no appsink named sink"))?;
    let out = std::sync::Arc::new(out);
    connect_poster(&pipeline, out.clone())?;
    watch_frames(&pipeline, c, live)?;
    if let Some(talk) = talk {
        connect_ears(&pipeline, talk)?;
    }

    let mut first_pts: Option<gst::ClockTime> = None;
    let mut init_sent = false;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let list = sample.buffer_list().ok_or(gst::FlowError::Error)?;
                let mut buffers: Vec<&gst::BufferRef> = list.iter().collect();
                let Some(first) = buffers.first() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if first
                    .flags()
                    .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
                {
                    // An init segment. A second one would be an updated header at EOS, which
                    // this muxer mode does not send; ignore rather than confuse the playlist.
                    if !init_sent {
                        let map = first.map_readable().map_err(|_| gst::FlowError::Error)?;
                        if !out(Fragment::Init(map.to_vec())) {
                            return Err(gst::FlowError::Flushing);
                        }
                        init_sent = true;
                    }
                    buffers.remove(0);
                }
                let Some(head) = buffers.first() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let segment = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>());
                let pts = head
                    .pts()
                    .and_then(|p| segment.and_then(|s| s.to_running_time(p)))
                    .unwrap_or(gst::ClockTime::ZERO);
                let start = *first_pts.get_or_insert(pts);
                let duration = head.duration().unwrap_or(gst::ClockTime::ZERO);
                let mut bytes = Vec::with_capacity(buffers.iter().map(|b| b.size()).sum());
                for b in buffers {
                    let map = b.map_readable().map_err(|_| gst::FlowError::Error)?;
                    bytes.extend_from_slice(&map);
                }
                let sent = out(Fragment::Media {
                    bytes,
                    start_us: pts.saturating_sub(start).useconds(),
                    duration_us: duration.useconds(),
                });
                if sent {
                    Ok(gst::FlowSuccess::Ok)
                } else {
                    Err(gst::FlowError::Flushing)
                }
            })
            .build(),
    );
    Ok(Capture {
        pipeline,
        video_encoder,
        audio_encoder,
        live: live.clone(),
    })
}

/// Looks at about one camera frame a second for the picture watchdog, opens the preview branch
/// while the screen asks for it, and hands its JPEGs to `live` (memory only).
fn watch_frames(pipeline: &gst::Pipeline, c: &Config, live: &Arc<Live>) -> anyhow::Result<()> {
    let tee = pipeline
        .by_name("frames")
        .ok_or_else(|| anyhow!("pipeline has no frames tee"))?;
    let gate = pipeline
        .by_name("previewgate")
        .ok_or_else(|| anyhow!("pipeline has no preview valve"))?;
    let pad = tee
        .static_pad("sink")
        .ok_or_else(|| anyhow!("the frames tee has no sink pad"))?;
    let luma_bytes = (c.video.width * c.video.height) as usize;
    let (probe_live, gate) = (live.clone(), gate.downgrade());
    // The probe runs on the camera's streaming thread; its own memory is two atomics.
    let next_look_ns = std::sync::atomic::AtomicU64::new(0);
    let open = std::sync::atomic::AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let wanted = probe_live.preview_wanted();
        if wanted != open.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(gate) = gate.upgrade() {
                gate.set_property("drop", !wanted);
                open.store(wanted, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some(buffer) = info.buffer() {
            let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO).nseconds();
            if pts >= next_look_ns.load(std::sync::atomic::Ordering::Relaxed) {
                next_look_ns.store(pts + 1_000_000_000, std::sync::atomic::Ordering::Relaxed);
                if let Ok(map) = buffer.map_readable() {
                    let luma = &map[..luma_bytes.min(map.len())];
                    probe_live.saw_frame(crate::live::frame_signature(luma));
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    let live = live.clone();
    on_each_buffer(pipeline, "preview", move |jpeg| live.set_preview(jpeg))
}

/// Hands each microphone's 16 kHz samples (appsinks `ear0`, `ear1`) to talk time's detector, on
/// that microphone's streaming thread; nothing of the sound is kept.
fn connect_ears(pipeline: &gst::Pipeline, talk: &crate::talk::Shared) -> anyhow::Result<()> {
    for n in 0..MICROPHONES.len() {
        let Some(sink) = pipeline
            .by_name(&format!("ear{n}"))
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        else {
            continue;
        };
        let talk = talk.clone();
        let mut samples: Vec<i16> = Vec::new();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let at = sample
                        .segment()
                        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                        .and_then(|s| buffer.pts().and_then(|p| s.to_running_time(p)))
                        .unwrap_or(gst::ClockTime::ZERO);
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    samples.clear();
                    samples.extend(
                        map.chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]])),
                    );
                    // Talk time never ends the lesson: a lock poisoned by a panic elsewhere is
                    // used as it is.
                    talk.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .hear(n, at.nseconds(), &samples);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    Ok(())
}

/// Hands a copy of each buffer the appsink `name` receives (one JPEG) to `f`.
fn on_each_buffer(
    pipeline: &gst::Pipeline,
    name: &str,
    f: impl Fn(Vec<u8>) + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let sink = pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("pipeline has no appsink named {name}"))?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                f(map.to_vec());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// The loudness in a `level` element's message, if `msg` is one: which microphone (its meter's
/// number), and the loudest channel's RMS and peak, in dBFS.
fn level_of(msg: &gst::Message) -> Option<(usize, f64, f64)> {
    let gst::MessageView::Element(e) = msg.view() else {
        return None;
    };
    let s = e.structure()?;
    if s.name() != "level" {
        return None;
    }
    let loudest = |field: &str| -> Option<f64> {
        let values = s.get::<gst::glib::ValueArray>(field).ok()?;
        values
            .iter()
            .filter_map(|v| v.get::<f64>().ok())
            .reduce(f64::max)
    };
    // Silence comes as -inf (or a huge negative number): shown as the floor of the meter.
    let floor = |db: f64| {
        if db.is_finite() {
            db.max(-100.0)
        } else {
            -100.0
        }
    };
    let mic = match msg.src().map(|s| s.name()).as_deref() {
        Some("meter1") => 1,
        _ => 0,
    };
    Some((mic, floor(loudest("rms")?), floor(loudest("peak")?)))
}

/// Lets the first frame into the poster branch and no other, so the JPEG encoder runs once per
/// pipeline, and hands the JPEG on as [`Fragment::Poster`]. The branch has no queue, so no
/// thread of its own: the one frame is scaled and encoded on the camera's streaming thread, and
/// then the valve drops every frame there (passing EOS, so the pipeline can finish). A probe
/// returning `Drop` would do the same, but gstreamer-rs then hands GStreamer a NULL buffer to
/// unref, which logs a critical warning per frame.
fn connect_poster(
    pipeline: &gst::Pipeline,
    out: std::sync::Arc<impl Fn(Fragment) -> bool + Send + Sync + 'static>,
) -> anyhow::Result<()> {
    let gate = pipeline
        .by_name("postergate")
        .ok_or_else(|| anyhow!("pipeline has no poster valve"))?;
    let out_pad = gate
        .static_pad("src")
        .ok_or_else(|| anyhow!("poster valve has no src pad"))?;
    let gate = gate.downgrade();
    out_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        // The first frame is on its way to the encoder; close the valve behind it.
        if let Some(gate) = gate.upgrade() {
            gate.set_property("drop", true);
        }
        gst::PadProbeReturn::Remove
    });
    on_each_buffer(pipeline, "poster", move |jpeg| {
        out(Fragment::Poster(jpeg));
    })
}

impl Capture {
    /// Runs until `should_stop` says so (or the pipeline ends or fails), then sends EOS so the last
    /// partial fragment is flushed, and waits for it. Returns the recorded media duration.
    ///
    /// When an element fails (a camera unplugged, a microphone gone) the rest of the pipeline is
    /// still sent EOS, so the muxer flushes the fragment it holds and what was recorded up to that
    /// moment is kept; the failure is returned after that.
    pub fn run(
        &self,
        mut should_stop: impl FnMut(gst::ClockTime) -> bool,
    ) -> anyhow::Result<gst::ClockTime> {
        if let Err(e) = self.pipeline.set_state(gst::State::Playing) {
            // The element that failed says why on the bus (no such device, busy, no permission).
            let why = self
                .pipeline
                .bus()
                .and_then(|b| {
                    b.timed_pop_filtered(
                        gst::ClockTime::from_seconds(1),
                        &[gst::MessageType::Error],
                    )
                })
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(err) => {
                        Some(format!("{:#}", explain_failure(err, false)))
                    }
                    _ => None,
                });
            let _ = self.pipeline.set_state(gst::State::Null);
            return Err(match why {
                Some(why) => anyhow!(why),
                None => anyhow!(e).context(
                    "cannot start the capture pipeline (is the camera or microphone in use?)",
                ),
            });
        }
        tracing::info!("capturing");
        let bus = self.pipeline.bus().expect("pipeline has a bus");
        let mut eos_sent: Option<std::time::Instant> = None;
        let mut failure: Option<anyhow::Error> = None;
        let result = loop {
            // Running time of the pipeline clock, i.e. how much the sources have captured; the sink lags
            // by up to one fragment because the muxer emits whole fragments.
            let position = self
                .pipeline
                .current_running_time()
                .unwrap_or(gst::ClockTime::ZERO);
            if eos_sent.is_none() && should_stop(position) {
                tracing::info!(%position, "stopping: sending end-of-stream");
                self.pipeline.send_event(gst::event::Eos::new());
                eos_sent = Some(std::time::Instant::now());
            }
            // A wedged source must not hang the stop: what was spooled is kept either way.
            let flush_limit =
                std::time::Duration::from_secs(if failure.is_some() { 3 } else { 10 });
            if eos_sent.is_some_and(|t| t.elapsed() > flush_limit) {
                break Err(failure.take().unwrap_or_else(|| anyhow!("the pipeline did not finish within 10 s of end-of-stream; the last segment may be lost")));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
                continue;
            };
            if let Some((mic, rms_db, peak_db)) = level_of(&msg) {
                self.live.set_level(Level {
                    source: MICROPHONES[mic].into(),
                    rms_db,
                    peak_db,
                });
                continue;
            }
            match msg.view() {
                gst::MessageView::Eos(..) => break failure.take().map_or(Ok(position), Err),
                // A failing source posts more than one error; the first says what happened.
                gst::MessageView::Error(err) if failure.is_none() => {
                    let failed = explain_failure(err, true);
                    tracing::error!(error = %failed, "capture failed: keeping what was recorded");
                    failure = Some(failed);
                    self.pipeline.send_event(gst::event::Eos::new());
                    eos_sent = Some(std::time::Instant::now());
                }
                _ => {}
            }
        };
        self.pipeline
            .set_state(gst::State::Null)
            .context("cannot stop the capture pipeline")?;
        let position = result?;
        // Ending with nothing recorded is only a failure if nobody asked the pipeline to stop
        // (a pause or stop right after start is fine).
        if position == gst::ClockTime::ZERO && eos_sent.is_none() {
            bail!("the pipeline ended before recording anything");
        }
        Ok(position)
    }
}

/// What a pipeline error means for the teacher: a named source (`camera`, `microphone`) that
/// fails could not be opened (before `recording`) or has gone away; anything else is a fault in
/// the pipeline itself.
fn explain_failure(err: &gst::message::Error, recording: bool) -> anyhow::Error {
    let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    let detail = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
    let source = match source.as_str() {
        "room-microphone" => "room microphone".to_string(),
        _ => source,
    };
    match source.as_str() {
        // What to do comes first, the technical detail (for the technician) last.
        "camera" | "microphone" | "room microphone" if !recording => anyhow!(
            "the {source} cannot be opened. Nothing was recorded. Check that the {source} is connected \
             and not in use by another program, then start again. (Detail: {detail})"
        ),
        "camera" | "microphone" | "room microphone" => anyhow!(
            "the {source} stopped delivering. The recording was ended and everything recorded until then is kept \
             and will be uploaded. Check the {source} and its cable, then start a new recording. (Detail: {detail})"
        ),
        _ => anyhow!(
            "capture pipeline failed in {}: {detail}",
            err.src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_pipeline_is_the_capture_without_lessonlens_own_work() {
        let mut c: Config = toml::from_str(
            "server_url = \"https://s:8443\"\nidentity_dir = \"/i\"\nspool_dir = \"/s\"\n[room_audio]\nsource = \"test\"\n",
        )
        .unwrap();
        for talk in [true, false] {
            c.talk.enabled = talk;
            let full = describe(&c, "x264enc", "avenc_aac");
            let bare = describe_bare(
                &c,
                "x264enc",
                "avenc_aac",
                std::path::Path::new("/tmp/b.mp4"),
            );
            let own = ["jpegenc", "appsink", "level", "valve", "tee"];
            let elements = crate::elements::in_description(&bare);
            for e in own {
                assert!(
                    !elements.iter().any(|x| x == e),
                    "{e} in the bare pipeline: {bare}"
                );
            }
            // Everything else the capture runs, the bare pipeline runs too (but its own muxer,
            // and the scaling and rate of the poster and preview branches).
            let theirs = ["isofmp4mux", "videoscale", "videorate"];
            for e in crate::elements::in_description(&full) {
                assert!(
                    own.contains(&e.as_str())
                        || theirs.contains(&e.as_str())
                        || elements.contains(&e),
                    "{e} is missing from the bare pipeline: {bare}"
                );
            }
            let venc = video_encoder_desc("x264enc", &c);
            assert!(full.contains(&venc) && bare.contains(&venc));
        }
    }

    #[test]
    fn probing_accepts_a_working_encoder_and_rejects_missing_ones() {
        init().unwrap();
        assert!(
            probe_encoder("x264enc"),
            "x264enc is installed by scripts/setup.sh"
        );
        assert!(!probe_encoder("no-such-h264enc"));
        // The chosen encoder is one of the list, and on this machine (no GPU) a software one.
        let chosen = pick_video_encoder().unwrap();
        assert!(VIDEO_ENCODERS.contains(&chosen));
    }
}
