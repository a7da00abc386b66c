//! Uploads as a device makes them, without GStreamer: synthetic sealed segments, sent over the
//! device API with the device's own certificate.

use crate::server::{Device, Server};

/// A fresh random recording id, as a device makes one.
pub fn new_recording_id() -> lessonlens_proto::RecordingId {
    use rand_core::TryRngCore;
    let mut id = [0u8; 16];
    rand_core::OsRng.try_fill_bytes(&mut id).unwrap();
    lessonlens_proto::RecordingId::from_random_bytes(id)
}

/// A sealed segment of `len` bytes of `fill`, 2 s long (0 s for the init segment), as a device
/// would upload it.
pub fn sealed_segment(
    pk: &lessonlens_proto::PublicKey,
    recording: lessonlens_proto::RecordingId,
    index: u32,
    fill: u8,
    len: usize,
) -> Vec<u8> {
    sealed(pk, recording, index, &vec![fill; len])
}

/// `plaintext` sealed as segment `index` of `recording` to `pk`.
fn sealed(
    pk: &lessonlens_proto::PublicKey,
    recording: lessonlens_proto::RecordingId,
    index: u32,
    plaintext: &[u8],
) -> Vec<u8> {
    use lessonlens_proto::envelope::{seal, Label, SealParams, DEFAULT_CHUNK_SIZE};
    use rand_core::TryRngCore;
    let params = SealParams {
        label: Label { recording, index },
        final_segment: false,
        start_us: 0,
        duration_us: if index == 0
            || lessonlens_proto::SegmentKind::of(index, 0, false).attachment()
        {
            0
        } else {
            2_000_000
        },
        chunk_size: DEFAULT_CHUNK_SIZE,
    };
    seal(&params, pk, plaintext, &mut rand_core::OsRng.unwrap_err()).unwrap()
}

impl Server {
    /// Uploads a small synthetic recording for `teacher` as `device`: the init segment, `media`
    /// media segments and a clean-stop manifest. Returns the recording id and the sealed segments
    /// as sent.
    pub fn upload_recording(
        &self,
        device: &Device,
        teacher: &str,
        media: u32,
    ) -> (lessonlens_proto::RecordingId, Vec<Vec<u8>>) {
        let pk = self.teacher_key(&self.device_agent(device), teacher);
        let rec = new_recording_id();
        (rec, self.upload_sealed(device, &pk, rec, media, None))
    }

    /// Uploads recording `rec` sealed to `pk` (a teacher's key, or the unassigned one with the
    /// offline `claim`) as `device`: the init segment, `media` media segments of 1000 bytes and a
    /// clean-stop manifest. Returns the sealed segments as sent.
    pub fn upload_sealed(
        &self,
        device: &Device,
        pk: &lessonlens_proto::PublicKey,
        rec: lessonlens_proto::RecordingId,
        media: u32,
        claim: Option<String>,
    ) -> Vec<Vec<u8>> {
        use lessonlens_proto::manifest::MANIFEST_VERSION;
        use lessonlens_proto::wire::SHA256_HEADER;
        use lessonlens_proto::{Manifest, ManifestSegment};
        use sha2::{Digest, Sha256};
        let agent = self.device_agent(device);
        let base = self.device_url();
        let segments: Vec<Vec<u8>> = (0..=media)
            .map(|index| sealed_segment(pk, rec, index, 7, 1000))
            .collect();
        for (index, body) in segments.iter().enumerate() {
            agent
                .put(&format!(
                    "{base}/api/device/v1/recordings/{rec}/segments/{index}"
                ))
                .set(SHA256_HEADER, &hex::encode(Sha256::digest(body)))
                .send_bytes(body)
                .expect("segment upload");
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            recording: rec,
            recipient: pk.fingerprint(),
            started_at: 0,
            segments: segments
                .iter()
                .enumerate()
                .map(|(i, b)| ManifestSegment {
                    index: i as u32,
                    sha256: hex::encode(Sha256::digest(b)),
                    start_us: 0,
                    duration_us: if i == 0 { 0 } else { 2_000_000 },
                })
                .collect(),
            clean_stop: true,
            claim,
        };
        agent
            .put(&format!("{base}/api/device/v1/recordings/{rec}/manifest"))
            .send_bytes(&manifest.to_json())
            .expect("manifest upload");
        segments
    }

    /// Uploads a poster frame for `rec` (sealed to `teacher`) as `device` does.
    pub fn upload_poster(
        &self,
        device: &Device,
        teacher: &str,
        rec: lessonlens_proto::RecordingId,
    ) {
        self.upload_attachment(
            device,
            teacher,
            rec,
            lessonlens_proto::POSTER_INDEX,
            &[0xd8; 500],
        );
    }

    /// Uploads talk time for `rec` with two microphones' `seconds` (see
    /// `lessonlens_proto::talk`), as `device` would.
    pub fn upload_talk(
        &self,
        device: &Device,
        teacher: &str,
        rec: lessonlens_proto::RecordingId,
        seconds: &str,
    ) {
        let talk = serde_json::json!({"version": 1, "microphones": 2, "seconds": seconds});
        self.upload_attachment(
            device,
            teacher,
            rec,
            lessonlens_proto::TALK_INDEX,
            &serde_json::to_vec(&talk).unwrap(),
        );
    }

    /// Uploads something sealed with `rec` at a reserved `index`, as `device` would.
    fn upload_attachment(
        &self,
        device: &Device,
        teacher: &str,
        rec: lessonlens_proto::RecordingId,
        index: u32,
        plaintext: &[u8],
    ) {
        use sha2::{Digest, Sha256};
        let agent = self.device_agent(device);
        let pk = self.teacher_key(&agent, teacher);
        let body = sealed(&pk, rec, index, plaintext);
        agent
            .put(&format!(
                "{}/api/device/v1/recordings/{rec}/segments/{index}",
                self.device_url()
            ))
            .set(
                lessonlens_proto::wire::SHA256_HEADER,
                &hex::encode(Sha256::digest(&body)),
            )
            .send_bytes(&body)
            .expect("upload of a poster or talk time");
    }
}
