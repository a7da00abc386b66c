//! The structural scanner that proves no plaintext media rests on disk.

use std::path::Path;

const BRANDS: [&[u8; 4]; 8] = [
    b"isom", b"iso5", b"iso6", b"mp41", b"mp42", b"cmfc", b"dash", b"avc1",
];

/// Looks for plaintext media structurally (see DESIGN.md, "Testing the promises"): an `ftyp` box
/// with a plausible size and a known major brand, a `moof` whose first child is `mfhd`, an `mdat`
/// whose size fits in the file, or an H.264 start code followed by an SPS NAL header and a known
/// profile. Returns the offset and what was found.
pub fn find_plaintext_media(bytes: &[u8]) -> Option<(usize, &'static str)> {
    let be32 = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    for i in 0..bytes.len().saturating_sub(8) {
        match &bytes[i..i + 4] {
            b"ftyp" if i >= 4 => {
                let size = be32(i - 4);
                if (8..=1024).contains(&size) && BRANDS.iter().any(|b| &bytes[i + 4..i + 8] == *b) {
                    return Some((i - 4, "ftyp box"));
                }
            }
            b"moof" if i >= 4 && i + 12 <= bytes.len() && &bytes[i + 8..i + 12] == b"mfhd" => {
                return Some((i - 4, "moof box"));
            }
            b"mdat" if i >= 4 => {
                let size = be32(i - 4);
                // Together with the neighbouring checks this keeps random ciphertext from matching.
                if size >= 16 && i - 4 + size == bytes.len() && i >= 12 {
                    return Some((i - 4, "mdat box"));
                }
            }
            // A JPEG (the poster frame): start of image, then a JFIF/Exif segment or the
            // quantisation tables jpegenc writes first.
            [0xff, 0xd8, 0xff, m] if matches!(m, 0xe0 | 0xe1 | 0xdb) && bytes.len() > i + 8 => {
                let len = u16::from_be_bytes([bytes[i + 4], bytes[i + 5]]) as usize;
                if (4..=1024).contains(&len) {
                    return Some((i, "JPEG image"));
                }
            }
            [0, 0, 0, 1] => {
                let nal = bytes[i + 4];
                if nal & 0x80 == 0
                    && nal & 0x1f == 7
                    && [66, 77, 88, 100, 110, 122, 244].contains(&bytes[i + 5])
                {
                    return Some((i, "H.264 SPS"));
                }
            }
            _ => {}
        }
    }
    None
}

/// Scans every file under `dir`; returns the first plaintext media found, with its path.
pub fn scan_tree(dir: &Path) -> Option<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return None;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            if let Some(hit) = scan_tree(&path) {
                return Some(hit);
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if let Some((off, what)) = find_plaintext_media(&bytes) {
                return Some(format!("{what} at offset {off} of {}", path.display()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_planted_boxes_and_ignores_noise() {
        // Pseudo-random noise (xorshift) stands in for ciphertext.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(find_plaintext_media(&noise), None);
        let mut with_ftyp = noise.clone();
        with_ftyp[5000..5016].copy_from_slice(b"\0\0\0\x18ftypiso6\0\0\0\0");
        assert_eq!(find_plaintext_media(&with_ftyp), Some((5000, "ftyp box")));
        noise[700..716].copy_from_slice(b"\0\0\x01\0moof\0\0\0\x10mfhd");
        assert_eq!(find_plaintext_media(&noise), Some((700, "moof box")));
    }
}
