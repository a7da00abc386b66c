//! Deletion receipts: what a teacher's deletion removed, signed by the server (Ed25519) so that
//! a DPO can check later that it is genuine and unaltered. A receipt names nobody.

use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What a deletion receipt says. It names nobody: `subject` is the pseudonym the audit log used
/// for the person, and it holds counts, a key fingerprint and times only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub version: u32,
    pub receipt_id: String,
    pub subject: String,
    pub recordings: u64,
    pub segments: u64,
    pub bytes: u64,
    /// The fingerprint of the private key that was shredded (none if the person had no key).
    pub key_fingerprint: Option<String>,
    pub marked_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// The server's receipt-signing public key (Ed25519, hex).
    pub signer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    /// Ed25519 signature (hex) over [`Receipt::signed_bytes`].
    pub signature: String,
}

impl Receipt {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = b"lessonlens-deletion-receipt-v1\n".to_vec();
        bytes.extend(serde_json::to_vec(self).expect("a receipt serialises"));
        bytes
    }

    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedReceipt {
        let signature = hex::encode(key.sign(&self.signed_bytes()).to_bytes());
        SignedReceipt {
            receipt: self,
            signature,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("this is not a lessonlens deletion receipt: {0}")]
    Malformed(String),
    #[error("the receipt was signed by key {0}, not by this school's server ({1})")]
    OtherSigner(String, String),
    #[error("the signature does not match: the receipt was altered after it was signed")]
    BadSignature,
}

/// Checks a receipt file's text against the expected signer (the school server's public key).
pub fn verify(text: &str, expected: &VerifyingKey) -> Result<Receipt, ReceiptError> {
    let signed: SignedReceipt =
        serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    let expected_hex = hex::encode(expected.as_bytes());
    if signed.receipt.signer != expected_hex {
        return Err(ReceiptError::OtherSigner(
            signed.receipt.signer.clone(),
            expected_hex,
        ));
    }
    let sig: [u8; 64] = hex::decode(&signed.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ReceiptError::Malformed("the signature is not 64 bytes of hex".into()))?;
    expected
        .verify(&signed.receipt.signed_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| ReceiptError::BadSignature)?;
    Ok(signed.receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(key: &ed25519_dalek::SigningKey) -> SignedReceipt {
        Receipt {
            version: 1,
            receipt_id: "r-1".into(),
            subject: "u-00".into(),
            recordings: 3,
            segments: 90,
            bytes: 123_456,
            key_fingerprint: Some("ab".repeat(16)),
            marked_at: 10,
            started_at: 20,
            finished_at: 30,
            signer: hex::encode(key.verifying_key().as_bytes()),
        }
        .sign(key)
    }

    #[test]
    fn a_genuine_receipt_verifies_and_a_tampered_one_does_not() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let text = serde_json::to_string_pretty(&receipt(&key)).unwrap();
        assert_eq!(verify(&text, &key.verifying_key()).unwrap().recordings, 3);
        let tampered = text.replace("\"recordings\": 3", "\"recordings\": 2");
        assert_ne!(tampered, text);
        assert_eq!(
            verify(&tampered, &key.verifying_key()),
            Err(ReceiptError::BadSignature)
        );
        // Signed by someone else: refused even though it is self-consistent.
        let forged = serde_json::to_string(&receipt(&other)).unwrap();
        assert!(matches!(
            verify(&forged, &key.verifying_key()),
            Err(ReceiptError::OtherSigner(..))
        ));
        let extra = text.replacen('{', "{\"name\": \"J Smith\",", 1);
        assert!(matches!(
            verify(&extra, &key.verifying_key()),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
