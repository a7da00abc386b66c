//! The envelope's promises: a round trip works, and every kind of damage fails with its own error.

use lessonlens_proto::envelope::{
    open, open_in_place, rewrap, seal, Label, OpenError, SealParams, CONTENT_OFFSET, HEADER_LEN,
    TAG_LEN,
};
use lessonlens_proto::{RecordingId, SecretKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const CHUNK: u32 = 1024;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(42)
}

fn label(index: u32) -> Label {
    Label {
        recording: RecordingId::from_random_bytes([9; 16]),
        index,
    }
}

fn params(index: u32, final_segment: bool) -> SealParams {
    SealParams {
        label: label(index),
        final_segment,
        start_us: 4_000_000,
        duration_us: 2_000_000,
        chunk_size: CHUNK,
    }
}

/// 3.5 chunks of plaintext: three full chunks and a partial last one.
fn plaintext() -> Vec<u8> {
    (0..(CHUNK as usize * 3 + 512))
        .map(|i| (i % 251) as u8)
        .collect()
}

fn sealed() -> (SecretKey, Vec<u8>) {
    let mut r = rng();
    let (sk, pk) = SecretKey::generate(&mut r);
    let env = seal(&params(3, false), &pk, &plaintext(), &mut r).unwrap();
    (sk, env)
}

const SEALED_CHUNK: usize = CHUNK as usize + TAG_LEN;

#[test]
fn round_trip() {
    let (sk, env) = sealed();
    let opened = open(Some(label(3)), &sk, &env).unwrap();
    assert_eq!(*opened.plaintext, plaintext());
    assert_eq!(opened.header.label, label(3));
    assert_eq!(opened.header.start_us, 4_000_000);
    assert_eq!(opened.header.duration_us, 2_000_000);
    assert!(!opened.header.final_segment);
    // The ciphertext does not contain the plaintext.
    assert!(!env.windows(64).any(|w| w == &plaintext()[..64]));
}

#[test]
fn opening_in_place_leaves_the_plaintext_in_the_buffer() {
    let (sk, env) = sealed();
    let mut buf = env.clone();
    let header = open_in_place(Some(label(3)), &sk, &mut buf).unwrap();
    assert_eq!(buf, plaintext());
    assert_eq!(header, open(None, &sk, &env).unwrap().header);

    // The last chunk altered: reported by its index, as `open` does.
    let mut damaged = env.clone();
    let last = damaged.len() - TAG_LEN - 1;
    damaged[last] ^= 1;
    assert_eq!(
        open_in_place(None, &sk, &mut damaged).unwrap_err(),
        OpenError::ChunkAltered(3)
    );
}

#[test]
fn empty_and_exact_multiple_round_trip() {
    let mut r = rng();
    let (sk, pk) = SecretKey::generate(&mut r);
    for len in [0usize, CHUNK as usize, 2 * CHUNK as usize] {
        let pt = vec![5u8; len];
        let env = seal(&params(0, true), &pk, &pt, &mut r).unwrap();
        let opened = open(Some(label(0)), &sk, &env).unwrap();
        assert_eq!(*opened.plaintext, pt, "length {len}");
        assert!(opened.header.final_segment);
        let mut buf = env.clone();
        open_in_place(Some(label(0)), &sk, &mut buf).unwrap();
        assert_eq!(buf, pt, "length {len}, in place");
    }
}

#[test]
fn truncated_segment_fails() {
    let (sk, env) = sealed();
    let cut = &env[..env.len() - 100];
    assert!(matches!(
        open(None, &sk, cut),
        Err(OpenError::Truncated { .. })
    ));
    let cut = &env[..HEADER_LEN + 10];
    assert!(matches!(
        open(None, &sk, cut),
        Err(OpenError::Truncated { .. })
    ));
}

#[test]
fn dropped_last_chunk_fails() {
    let (sk, env) = sealed();
    let dropped = &env[..CONTENT_OFFSET + 3 * SEALED_CHUNK];
    assert_eq!(
        open(None, &sk, dropped).unwrap_err(),
        OpenError::MissingChunks { missing: 1 }
    );
}

#[test]
fn swapped_chunks_fail() {
    let (sk, mut env) = sealed();
    let (a, b) = (CONTENT_OFFSET, CONTENT_OFFSET + SEALED_CHUNK);
    let first: Vec<u8> = env[a..b].to_vec();
    let second: Vec<u8> = env[b..b + SEALED_CHUNK].to_vec();
    env[a..b].copy_from_slice(&second);
    env[b..b + SEALED_CHUNK].copy_from_slice(&first);
    assert_eq!(
        open(None, &sk, &env).unwrap_err(),
        OpenError::ChunksReordered {
            found_at: 0,
            belongs_at: 1
        }
    );
}

#[test]
fn relabelled_segment_fails() {
    let (sk, env) = sealed();
    // Uploaded or requested as another index.
    assert!(matches!(
        open(Some(label(4)), &sk, &env),
        Err(OpenError::Relabelled { .. })
    ));
    // Or as the same index of another recording.
    let other = Label {
        recording: RecordingId::from_random_bytes([8; 16]),
        index: 3,
    };
    assert!(matches!(
        open(Some(other), &sk, &env),
        Err(OpenError::Relabelled { .. })
    ));
    // Editing the header to claim another index breaks its authentication.
    let mut edited = env.clone();
    edited[24..28].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(
        open(Some(label(4)), &sk, &edited).unwrap_err(),
        OpenError::HeaderOrKeyBlockAltered
    );
}

#[test]
fn flipped_bit_anywhere_fails() {
    let mut r = rng();
    let (sk, pk) = SecretKey::generate(&mut r);
    // Small enough to flip every bit, two chunks so both chunk positions are covered.
    let pt = vec![0x42u8; CHUNK as usize + 10];
    let env = seal(&params(1, false), &pk, &pt, &mut r).unwrap();
    for byte in 0..env.len() {
        for bit in 0..8 {
            let mut bad = env.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                open(Some(label(1)), &sk, &bad).is_err(),
                "bit {bit} of byte {byte}"
            );
        }
    }
    let mut bad = env.clone();
    bad[CONTENT_OFFSET + 5] ^= 1;
    assert_eq!(
        open(None, &sk, &bad).unwrap_err(),
        OpenError::ChunkAltered(0)
    );
}

#[test]
fn wrong_private_key_fails() {
    let (_, env) = sealed();
    let (other, _) = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(7));
    assert!(matches!(
        open(None, &other, &env),
        Err(OpenError::WrongKey { .. })
    ));
}

#[test]
fn trailing_bytes_fail() {
    let (sk, mut env) = sealed();
    env.extend_from_slice(b"junk");
    assert_eq!(
        open(None, &sk, &env).unwrap_err(),
        OpenError::TrailingBytes { extra: 4 }
    );
}

#[test]
fn not_a_segment_and_unknown_version_fail() {
    let (sk, mut env) = sealed();
    assert_eq!(
        open(None, &sk, b"\0\0\0\0ftypisom").unwrap_err(),
        OpenError::NotASegment
    );
    env[4] = 2;
    assert_eq!(
        open(None, &sk, &env).unwrap_err(),
        OpenError::UnsupportedVersion(2)
    );
}

#[test]
fn rewrap_keeps_content_and_changes_recipient() {
    let (school_sk, env) = sealed();
    let mut r = ChaCha20Rng::seed_from_u64(99);
    let (teacher_sk, teacher_pk) = SecretKey::generate(&mut r);
    let moved = rewrap(&env, &school_sk, &teacher_pk, &mut r).unwrap();
    assert_eq!(moved.len(), env.len());
    assert_eq!(moved[..HEADER_LEN], env[..HEADER_LEN]);
    assert_eq!(
        moved[CONTENT_OFFSET..],
        env[CONTENT_OFFSET..],
        "content must not change"
    );
    assert_eq!(
        *open(Some(label(3)), &teacher_sk, &moved).unwrap().plaintext,
        plaintext()
    );
    assert!(matches!(
        open(None, &school_sk, &moved),
        Err(OpenError::WrongKey { .. })
    ));
    // Re-wrapping damaged input is refused rather than producing a segment that cannot open.
    assert!(rewrap(&env[..env.len() - 1], &school_sk, &teacher_pk, &mut r).is_err());
}

#[test]
fn absurd_declared_length_is_malformed_not_a_panic() {
    let (sk, mut env) = sealed();
    env[32..40].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(
        open(None, &sk, &env),
        Err(OpenError::Malformed(_))
    ));
}
