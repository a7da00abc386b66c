//! The GStreamer pipelines the tests themselves run, kept here so that `tests/tests/elements.rs`
//! can hold them against the element table (`capture/gst-elements.txt`) with the capture's own.

use std::path::Path;

/// Another process sharing raw camera frames or microphone audio on `socket` (`shmsink`), as a
/// camera service would; `what` is `camera`, `microphone`, `silence` (a microphone sending
/// digital silence) or `tone` (a microphone whose element `tone` has a volume a test can change).
pub fn shared_source(what: &str, socket: &Path) -> String {
    const AUDIO: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1";
    let source = match what {
        "camera" => {
            "videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=180,framerate=30/1"
                .to_string()
        }
        "silence" => format!("audiotestsrc is-live=true wave=silence ! {AUDIO}"),
        "tone" => format!("audiotestsrc name=tone is-live=true volume=0.01 ! {AUDIO}"),
        _ => format!("audiotestsrc is-live=true ! {AUDIO}"),
    };
    format!(
        "{source} ! shmsink socket-path={} wait-for-connection=false shm-size=20000000 sync=true",
        socket.display()
    )
}

/// One process sharing recorded microphones in step: each raw file (48 kHz mono S16LE) is played
/// at its real pace into its own `shmsink` socket, all on one clock, as two microphones on one
/// device would be.
pub fn shared_recordings(files: &[(&Path, &Path)]) -> String {
    files
        .iter()
        .map(|(file, socket)| {
            format!(
                "filesrc location={} ! rawaudioparse format=pcm pcm-format=s16le sample-rate=48000 num-channels=1 \
                 ! shmsink socket-path={} wait-for-connection=false shm-size=20000000 sync=true",
                file.display(),
                socket.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a downloaded MP4's video and audio into appsinks `v` and `a`.
pub fn demux(file: &Path) -> String {
    format!(
        "filesrc location={} ! qtdemux name=d d.video_0 ! queue ! appsink name=v sync=false d.audio_0 ! queue ! appsink name=a sync=false",
        file.display()
    )
}
