//! The encrypted segment envelope: how one media segment is sealed on the device and opened on the
//! server for an authorised viewer.
//!
//! # Design
//! Every segment gets a fresh 256-bit data key (DEK). The content is split into chunks of
//! `chunk_size` plaintext bytes, each sealed with AES-256-GCM under the DEK. The DEK itself is sealed
//! to the recipient's X25519 public key with HPKE (RFC 9180, mode Base, DHKEM-X25519, HKDF-SHA256,
//! AES-256-GCM), with the header bytes as the HPKE `info`, so a key block only opens for the header
//! it was made for. Re-wrapping the DEK to another recipient replaces the key block and copies the
//! content bytes unchanged.
//!
//! # Byte layout (format version 1, all integers big-endian)
//! ```text
//! offset size  field
//! ---- header (56 bytes; authenticated: HPKE info and part of every chunk's associated data)
//!    0    4    magic "LLSG"
//!    4    1    format version = 1
//!    5    1    flags: bit 0 = final segment of the recording; other bits must be 0
//!    6    2    reserved, must be 0
//!    8   16    recording id (UUID bytes)
//!   24    4    segment index (0 = fMP4 init segment, media fragments from 1)
//!   28    4    chunk size: plaintext bytes per chunk, 1 KiB ..= 16 MiB
//!   32    8    plaintext length in bytes
//!   40    8    media start time, microseconds since the recording started
//!   48    8    media duration, microseconds
//! ---- key block (96 bytes; replaced when re-wrapping)
//!   56   16    recipient key fingerprint (SHA-256 of the X25519 public key, first 16 bytes)
//!   72   32    HPKE encapsulated key
//!  104   48    HPKE-sealed DEK (32 bytes + 16-byte tag)
//! ---- content (starts at 152)
//!  152    …    n = max(1, ceil(len / chunk_size)) chunks; chunk i = AES-256-GCM(DEK, nonce_i, ad_i,
//!              plaintext[i*chunk_size ..][.. chunk_size]) with its 16-byte tag appended
//! ```
//! `nonce_i` = chunk index as u64 (8 bytes) || 3 zero bytes || final-chunk flag (1 byte).
//! `ad_i` = header (56 bytes) || chunk index (u64) || final-chunk flag (1 byte) || final-segment
//! flag (1 byte). The header carries the format version, recording id and segment index, so a chunk
//! cannot be moved to another position, segment or recording, and the last chunk cannot be dropped
//! without detection.
//!
//! # Errors
//! [`open`] checks in an order that gives each kind of damage its own [`OpenError`]: framing first
//! (truncated header, magic, version), then the label the caller expected (relabelled segment), the
//! recipient (wrong key), the key block and header together (HPKE), the content length (truncated,
//! missing final chunks, trailing bytes), and finally each chunk (swapped or altered).

use crate::ids::{RecordingId, SegmentIndex};
use crate::keys::{KemT, KeyFingerprint, PublicKey, SecretKey};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use std::mem::MaybeUninit;
use zeroize::{Zeroize, Zeroizing};

pub const MAGIC: [u8; 4] = *b"LLSG";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 56;
pub const KEY_BLOCK_LEN: usize = 96;
/// Where the content starts.
pub const CONTENT_OFFSET: usize = HEADER_LEN + KEY_BLOCK_LEN;
pub const TAG_LEN: usize = 16;
pub const MIN_CHUNK_SIZE: u32 = 1024;
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// The chunk size devices use: large enough that the per-chunk overhead is negligible, small enough
/// that a streaming reader never holds much plaintext at once.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest plaintext a segment may declare (a 6 s segment is a few MB); keeps every length
/// computed from an unauthenticated header far from overflow.
pub const MAX_PLAINTEXT_LEN: u64 = 1 << 30;

const FLAG_FINAL_SEGMENT: u8 = 0b0000_0001;
const DEK_LEN: usize = 32;
const ENCAPPED_LEN: usize = 32;
const SEALED_DEK_LEN: usize = DEK_LEN + TAG_LEN;

/// What a segment claims to be. The server checks this against the upload URL; a viewer checks it
/// against the segment it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    pub recording: RecordingId,
    pub index: SegmentIndex,
}

/// The authenticated header of a segment, readable without any key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub label: Label,
    pub final_segment: bool,
    pub chunk_size: u32,
    pub plaintext_len: u64,
    pub start_us: u64,
    pub duration_us: u64,
    /// Whose public key the data key is sealed to.
    pub recipient: KeyFingerprint,
}

impl SegmentHeader {
    fn chunk_count(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_size))
            .max(1)
    }

    /// Exact length of a well-formed envelope with this header.
    pub fn envelope_len(&self) -> u64 {
        CONTENT_OFFSET as u64 + self.plaintext_len + self.chunk_count() * TAG_LEN as u64
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = FORMAT_VERSION;
        h[5] = if self.final_segment {
            FLAG_FINAL_SEGMENT
        } else {
            0
        };
        h[8..24].copy_from_slice(self.label.recording.as_bytes());
        h[24..28].copy_from_slice(&self.label.index.to_be_bytes());
        h[28..32].copy_from_slice(&self.chunk_size.to_be_bytes());
        h[32..40].copy_from_slice(&self.plaintext_len.to_be_bytes());
        h[40..48].copy_from_slice(&self.start_us.to_be_bytes());
        h[48..56].copy_from_slice(&self.duration_us.to_be_bytes());
        h
    }

    /// Reads the header and the recipient fingerprint. Checks framing only; nothing here is
    /// authenticated until [`open`] succeeds.
    pub fn parse(bytes: &[u8]) -> Result<SegmentHeader, OpenError> {
        if bytes.len() >= 4 && bytes[0..4] != MAGIC {
            return Err(OpenError::NotASegment);
        }
        if bytes.len() < CONTENT_OFFSET {
            return Err(OpenError::Truncated {
                expected: CONTENT_OFFSET as u64,
                actual: bytes.len() as u64,
            });
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(OpenError::UnsupportedVersion(bytes[4]));
        }
        if bytes[5] & !FLAG_FINAL_SEGMENT != 0 || bytes[6..8] != [0, 0] {
            return Err(OpenError::Malformed(
                "unknown flags or non-zero reserved bytes",
            ));
        }
        let u32_at = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_be_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let chunk_size = u32_at(28);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(OpenError::Malformed("chunk size out of range"));
        }
        if u64_at(32) > MAX_PLAINTEXT_LEN {
            return Err(OpenError::Malformed(
                "declared plaintext length is over 1 GiB",
            ));
        }
        let mut rec = [0u8; 16];
        rec.copy_from_slice(&bytes[8..24]);
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&bytes[HEADER_LEN..HEADER_LEN + 16]);
        Ok(SegmentHeader {
            label: Label {
                recording: RecordingId::from_bytes(rec),
                index: u32_at(24),
            },
            final_segment: bytes[5] & FLAG_FINAL_SEGMENT != 0,
            chunk_size,
            plaintext_len: u64_at(32),
            start_us: u64_at(40),
            duration_us: u64_at(48),
            recipient: KeyFingerprint(fp),
        })
    }
}

/// What the caller says about the segment being sealed.
#[derive(Clone, Copy, Debug)]
pub struct SealParams {
    pub label: Label,
    pub final_segment: bool,
    pub start_us: u64,
    pub duration_us: u64,
    pub chunk_size: u32,
}

/// A successfully opened segment.
#[derive(Debug)]
pub struct Opened {
    pub header: SegmentHeader,
    /// The plaintext media; wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    #[error("segment of {0} bytes is over the 1 GiB limit")]
    TooLarge(u64),
    #[error("sealing the data key to the recipient failed")]
    Hpke,
}

/// Why a segment did not open. Each kind of damage has its own variant so that the server can say
/// what went wrong and what to do (re-upload, check the device's key roster, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("not a lessonlens segment (bad magic bytes)")]
    NotASegment,
    #[error("segment format version {0} is not supported by this build")]
    UnsupportedVersion(u8),
    #[error("malformed segment header: {0}")]
    Malformed(&'static str),
    #[error("segment is truncated: expected {expected} bytes, found {actual}")]
    Truncated { expected: u64, actual: u64 },
    #[error("segment is missing its last {missing} chunk(s)")]
    MissingChunks { missing: u64 },
    #[error("segment has {extra} unexpected trailing bytes")]
    TrailingBytes { extra: u64 },
    #[error("segment is labelled {found:?} but {expected:?} was expected")]
    Relabelled { expected: Label, found: Label },
    #[error("segment is sealed to key {sealed_to}, not to the key used to open it")]
    WrongKey { sealed_to: KeyFingerprint },
    #[error("segment header or key block has been altered")]
    HeaderOrKeyBlockAltered,
    #[error("chunk {found_at} belongs at position {belongs_at}: chunks were reordered")]
    ChunksReordered { found_at: u64, belongs_at: u64 },
    #[error("chunk {0} has been altered")]
    ChunkAltered(u64),
}

fn nonce(chunk: u64, final_chunk: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[0..8].copy_from_slice(&chunk.to_be_bytes());
    n[11] = u8::from(final_chunk);
    // Unique per chunk under a data key that seals one segment only.
    Nonce::assume_unique_for_key(n)
}

/// The chunks' AES-256-GCM key, expanded by `ring`, whose AES-NI/VAES and carry-less-multiply
/// code opens segments several times faster than RustCrypto's `aes-gcm` (see
/// docs/benchmarks.md). ring's key types wipe nothing when dropped, so the expanded key lives in
/// a box of its own that is overwritten with zeros on drop. (It is built on the stack and moved
/// into the box; like any Rust value moved by value, that stack copy is not wiped.) `MaybeUninit` makes that sound for
/// any type, and never runs the key's own destructor (it has none; were one ever added, the
/// effect would be a leak, not a fault).
struct ChunkKey(Box<MaybeUninit<LessSafeKey>>);

impl ChunkKey {
    fn new(dek: &[u8; DEK_LEN]) -> ChunkKey {
        let key = UnboundKey::new(&AES_256_GCM, dek).expect("32-byte key");
        ChunkKey(Box::new(MaybeUninit::new(LessSafeKey::new(key))))
    }

    fn get(&self) -> &LessSafeKey {
        // SAFETY: written in `new` and only overwritten in `drop`, after its last use.
        unsafe { self.0.assume_init_ref() }
    }
}

impl Drop for ChunkKey {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl ChunkKey {
    fn wipe(&mut self) {
        std::slice::from_mut(&mut *self.0).zeroize();
    }
}

fn chunk_ad(
    header: &[u8; HEADER_LEN],
    chunk: u64,
    final_chunk: bool,
    final_segment: bool,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(HEADER_LEN + 10);
    ad.extend_from_slice(header);
    ad.extend_from_slice(&chunk.to_be_bytes());
    ad.push(u8::from(final_chunk));
    ad.push(u8::from(final_segment));
    ad
}

/// Seals `plaintext` for `recipient`. The DEK is drawn from `rng` and wiped before returning.
pub fn seal<R: RngCore + CryptoRng>(
    params: &SealParams,
    recipient: &PublicKey,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&params.chunk_size) {
        return Err(SealError::ChunkSize(params.chunk_size));
    }
    if plaintext.len() as u64 > MAX_PLAINTEXT_LEN {
        return Err(SealError::TooLarge(plaintext.len() as u64));
    }
    let header = SegmentHeader {
        label: params.label,
        final_segment: params.final_segment,
        chunk_size: params.chunk_size,
        plaintext_len: plaintext.len() as u64,
        start_us: params.start_us,
        duration_us: params.duration_us,
        recipient: recipient.fingerprint(),
    };
    let header_bytes = header.encode();
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    rng.fill_bytes(dek.as_mut());

    let mut out = Vec::with_capacity(header.envelope_len() as usize);
    out.extend_from_slice(&header_bytes);
    write_key_block(&mut out, &header_bytes, &dek, recipient, rng)?;

    let cipher = ChunkKey::new(&dek);
    let n = header.chunk_count();
    let mut chunks = plaintext.chunks(params.chunk_size as usize);
    for i in 0..n {
        let piece = chunks.next().unwrap_or(&[]);
        let last = i + 1 == n;
        let ad = chunk_ad(&header_bytes, i, last, params.final_segment);
        // Encrypt in place at the end of the output buffer, then append the tag.
        let start = out.len();
        out.extend_from_slice(piece);
        let tag = cipher
            .get()
            .seal_in_place_separate_tag(nonce(i, last), Aad::from(&ad), &mut out[start..])
            .expect("AES-GCM encryption of a bounded chunk cannot fail");
        out.extend_from_slice(tag.as_ref());
    }
    debug_assert_eq!(out.len() as u64, header.envelope_len());
    Ok(out)
}

fn write_key_block<R: RngCore + CryptoRng>(
    out: &mut Vec<u8>,
    header_bytes: &[u8; HEADER_LEN],
    dek: &[u8; DEK_LEN],
    recipient: &PublicKey,
    rng: &mut R,
) -> Result<(), SealError> {
    let (encapped, sealed) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, KemT, R>(
        &OpModeS::Base,
        &recipient.0,
        header_bytes,
        dek,
        b"",
        rng,
    )
    .map_err(|_| SealError::Hpke)?;
    out.extend_from_slice(&recipient.fingerprint().0);
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&sealed);
    Ok(())
}

/// Checks framing, label and recipient, then unwraps the DEK (which authenticates the header).
fn unwrap_dek(
    expected: Option<Label>,
    sk: &SecretKey,
    bytes: &[u8],
) -> Result<(SegmentHeader, Zeroizing<[u8; DEK_LEN]>), OpenError> {
    let header = SegmentHeader::parse(bytes)?;
    if let Some(expected) = expected {
        if expected != header.label {
            return Err(OpenError::Relabelled {
                expected,
                found: header.label,
            });
        }
    }
    if header.recipient != sk.public_key().fingerprint() {
        return Err(OpenError::WrongKey {
            sealed_to: header.recipient,
        });
    }
    let kb = &bytes[HEADER_LEN..CONTENT_OFFSET];
    let encapped =
        <<KemT as Kem>::EncappedKey as Deserializable>::from_bytes(&kb[16..16 + ENCAPPED_LEN])
            .map_err(|_| OpenError::HeaderOrKeyBlockAltered)?;
    let sealed = &kb[16 + ENCAPPED_LEN..16 + ENCAPPED_LEN + SEALED_DEK_LEN];
    let dek_vec = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, KemT>(
            &OpModeR::Base,
            &sk.secret,
            &encapped,
            &bytes[..HEADER_LEN],
            sealed,
            b"",
        )
        .map_err(|_| OpenError::HeaderOrKeyBlockAltered)?,
    );
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    dek.copy_from_slice(&dek_vec);
    Ok((header, dek))
}

/// Compares the envelope's length with what its header promises.
fn check_length(header: &SegmentHeader, have: u64) -> Result<(), OpenError> {
    let want = header.envelope_len();
    if have > want {
        return Err(OpenError::TrailingBytes { extra: have - want });
    }
    if have < want {
        // A cut exactly at a chunk boundary means whole chunks were dropped from the end.
        let sealed_chunk = u64::from(header.chunk_size) + TAG_LEN as u64;
        let content = have - CONTENT_OFFSET as u64;
        if content.is_multiple_of(sealed_chunk) {
            return Err(OpenError::MissingChunks {
                missing: header.chunk_count() - content / sealed_chunk,
            });
        }
        return Err(OpenError::Truncated {
            expected: want,
            actual: have,
        });
    }
    Ok(())
}

/// Opens a segment. `expected` is the label the caller asked for (`None` to accept any label, e.g.
/// when reading a spool file whose name is not trusted).
pub fn open(expected: Option<Label>, sk: &SecretKey, bytes: &[u8]) -> Result<Opened, OpenError> {
    let mut plaintext = Zeroizing::new(bytes.to_vec());
    match open_in_place(expected, sk, &mut plaintext) {
        Ok(header) => Ok(Opened { header, plaintext }),
        Err(OpenError::ChunkAltered(i)) => Err(misplaced_or_altered(sk, bytes, i)),
        Err(e) => Err(e),
    }
}

/// Opens a segment in its own buffer: `sealed` becomes the plaintext (header, key block and tags
/// removed) with no second buffer and no copy besides the decryption itself; this is how the
/// server serves playback. On error the buffer holds partly decrypted bytes: wipe or drop it.
/// A chunk that does not authenticate is reported as [`OpenError::ChunkAltered`]; [`open`], which
/// still has the sealed bytes then, also tells a chunk that was moved.
pub fn open_in_place(
    expected: Option<Label>,
    sk: &SecretKey,
    sealed: &mut Vec<u8>,
) -> Result<SegmentHeader, OpenError> {
    let (header, dek) = unwrap_dek(expected, sk, sealed)?;
    check_length(&header, sealed.len() as u64)?;
    let header_bytes: [u8; HEADER_LEN] = sealed[..HEADER_LEN].try_into().expect("length checked");
    let cipher = ChunkKey::new(&dek);
    let n = header.chunk_count();
    let sealed_chunk = header.chunk_size as usize + TAG_LEN;
    let mut written = 0;
    for i in 0..n {
        let at = CONTENT_OFFSET + i as usize * sealed_chunk;
        let tag_at = (at + sealed_chunk).min(sealed.len()) - TAG_LEN;
        let tag = Tag::try_from(&sealed[tag_at..tag_at + TAG_LEN]).expect("16 bytes");
        let last = i + 1 == n;
        let ad = chunk_ad(&header_bytes, i, last, header.final_segment);
        // Decrypts the chunk at `at` to `written`, moving it forward over the header, key block
        // and earlier tags as it goes.
        let plain = cipher
            .get()
            .open_in_place_separate_tag(
                nonce(i, last),
                Aad::from(&ad),
                tag,
                &mut sealed[written..tag_at],
                at - written..,
            )
            .map_err(|_| OpenError::ChunkAltered(i))?;
        written += plain.len();
    }
    debug_assert_eq!(written as u64, header.plaintext_len);
    sealed.truncate(written);
    Ok(header)
}

/// Whether chunk `i` of `bytes`, which did not authenticate in its place, is an intact chunk from
/// another place. Only on the failure path, so it unwraps the data key again.
fn misplaced_or_altered(sk: &SecretKey, bytes: &[u8], i: u64) -> OpenError {
    let Ok((header, dek)) = unwrap_dek(None, sk, bytes) else {
        return OpenError::ChunkAltered(i);
    };
    let header_bytes: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("length checked");
    let cipher = ChunkKey::new(&dek);
    let n = header.chunk_count();
    let sealed_chunk = header.chunk_size as usize + TAG_LEN;
    let at = CONTENT_OFFSET + i as usize * sealed_chunk;
    let ct = &bytes[at..(at + sealed_chunk).min(bytes.len())];
    let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
    let tag = Tag::try_from(tag).expect("16 bytes");
    let opens_at = |j: u64| {
        let last = j + 1 == n;
        let ad = chunk_ad(&header_bytes, j, last, header.final_segment);
        let mut scratch = Zeroizing::new(body.to_vec());
        cipher
            .get()
            .open_in_place_separate_tag(nonce(j, last), Aad::from(&ad), tag, &mut scratch, 0..)
            .is_ok()
    };
    match (0..n).find(|&j| j != i && opens_at(j)) {
        Some(j) => OpenError::ChunksReordered {
            found_at: i,
            belongs_at: j,
        },
        None => OpenError::ChunkAltered(i),
    }
}

/// Re-seals the data key of `bytes` to `to`, leaving header and content untouched. Used when an
/// offline recording sealed to the school's unassigned key is assigned to its teacher.
pub fn rewrap<R: RngCore + CryptoRng>(
    bytes: &[u8],
    from: &SecretKey,
    to: &PublicKey,
    rng: &mut R,
) -> Result<Vec<u8>, OpenError> {
    let (header, dek) = unwrap_dek(None, from, bytes)?;
    // Refuse to re-wrap something that would not open afterwards anyway.
    check_length(&header, bytes.len() as u64)?;
    let header_bytes: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("length checked");
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&header_bytes);
    write_key_block(&mut out, &header_bytes, &dek, to, rng)
        .map_err(|_| OpenError::HeaderOrKeyBlockAltered)?;
    out.extend_from_slice(&bytes[CONTENT_OFFSET..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{ChunkKey, LessSafeKey};

    #[test]
    fn a_chunk_key_is_zeros_once_wiped() {
        let mut key = ChunkKey::new(&[0x5a; 32]);
        let size = std::mem::size_of::<LessSafeKey>();
        key.wipe();
        // SAFETY: after the wipe every byte of the box, padding included, is an initialised zero.
        let bytes = unsafe { std::slice::from_raw_parts(key.0.as_ptr().cast::<u8>(), size) };
        assert!(
            size >= 15 * 16,
            "an AES-256 key schedule is 15 round keys of 16 bytes"
        );
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
