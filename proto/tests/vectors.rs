//! Committed test vectors: the format is held byte for byte, so a change to the layout or the
//! crypto shows up here rather than as unreadable recordings in a school.

use lessonlens_proto::envelope::{open, seal, Label, SealParams};
use lessonlens_proto::SecretKey;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/envelope-v1.json");

#[test]
fn vectors_seal_and_open_exactly() {
    let cases: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let sk = SecretKey::from_bytes(&hex::decode(case["secret_key"].as_str().unwrap()).unwrap())
            .unwrap();
        let label = Label {
            recording: case["recording"].as_str().unwrap().parse().unwrap(),
            index: case["index"].as_u64().unwrap() as u32,
        };
        let plaintext = hex::decode(case["plaintext"].as_str().unwrap()).unwrap();
        let envelope = hex::decode(case["envelope"].as_str().unwrap()).unwrap();
        let params = SealParams {
            label,
            final_segment: case["final_segment"].as_bool().unwrap(),
            start_us: case["start_us"].as_u64().unwrap(),
            duration_us: case["duration_us"].as_u64().unwrap(),
            chunk_size: case["chunk_size"].as_u64().unwrap() as u32,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(case["rng_seed"].as_u64().unwrap());
        let resealed = seal(&params, sk.public_key(), &plaintext, &mut rng).unwrap();
        assert_eq!(
            hex::encode(&resealed),
            hex::encode(&envelope),
            "{name}: seal changed"
        );
        let opened = open(Some(label), &sk, &envelope).unwrap();
        assert_eq!(*opened.plaintext, plaintext, "{name}: open changed");
        assert_eq!(opened.header.final_segment, params.final_segment, "{name}");
    }
}
