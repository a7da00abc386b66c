//! Prints the envelope test vectors (`proto/tests/vectors/envelope-v1.json`) from fixed seeds.
//! Run `cargo run -p lessonlens-proto --example make_vectors > proto/tests/vectors/envelope-v1.json`
//! only when the format version changes; the committed file is what the tests hold the code to.

use lessonlens_proto::envelope::{seal, Label, SealParams};
use lessonlens_proto::{RecordingId, SecretKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn main() {
    let cases = [
        ("empty init segment", 0u32, false, 0usize, 1024u32),
        ("one short chunk", 1, false, 100, 1024),
        ("exactly two chunks", 2, false, 2048, 1024),
        ("final segment, partial last chunk", 3, true, 2500, 1024),
    ];
    let mut out = Vec::new();
    for (n, (name, index, final_segment, len, chunk_size)) in cases.into_iter().enumerate() {
        let mut key_rng = ChaCha20Rng::seed_from_u64(1000 + n as u64);
        let (sk, pk) = SecretKey::generate(&mut key_rng);
        let recording = RecordingId::from_random_bytes([n as u8 + 1; 16]);
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
        let seed = 2000 + n as u64;
        let params = SealParams {
            label: Label { recording, index },
            final_segment,
            start_us: 2_000_000 * u64::from(index),
            duration_us: 2_000_000,
            chunk_size,
        };
        let env = seal(
            &params,
            &pk,
            &plaintext,
            &mut ChaCha20Rng::seed_from_u64(seed),
        )
        .unwrap();
        out.push(serde_json::json!({
            "name": name,
            "secret_key": hex::encode(sk.to_bytes().as_ref()),
            "recording": recording.to_string(),
            "index": index,
            "final_segment": final_segment,
            "start_us": params.start_us,
            "duration_us": params.duration_us,
            "chunk_size": chunk_size,
            "plaintext": hex::encode(&plaintext),
            "rng_seed": seed,
            "envelope": hex::encode(&env),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
