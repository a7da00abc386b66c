//! Key types: X25519 key pairs (DHKEM-X25519 for HPKE) and their fingerprints.
//!
//! A teacher's secret key never leaves the server's key vault; devices hold public keys only.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

pub(crate) type KemT = X25519HkdfSha256;

/// Length in bytes of a serialized public or secret key.
pub const KEY_LEN: usize = 32;

/// A recipient's X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(pub(crate) <KemT as Kem>::PublicKey);

/// A recipient's X25519 secret key. The inner type zeroizes itself on drop. It carries its public
/// key, worked out once, because opening a segment checks it against the envelope's recipient.
pub struct SecretKey {
    pub(crate) secret: <KemT as Kem>::PrivateKey,
    public: PublicKey,
}

/// First 16 bytes of SHA-256 over the public key: names a key in envelopes without revealing whose.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyFingerprint(#[serde(with = "hex_16")] pub [u8; 16]);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        <KemT as Kem>::PublicKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::BadPublicKey)
    }

    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes().into()
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        let digest = Sha256::digest(self.to_bytes());
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        KeyFingerprint(fp)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(s).map_err(|_| KeyError::BadPublicKey)?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl SecretKey {
    /// A fresh key pair from the caller's CSPRNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> (SecretKey, PublicKey) {
        let (secret, public) = KemT::gen_keypair(rng);
        let public = PublicKey(public);
        (
            SecretKey {
                secret,
                public: public.clone(),
            },
            public,
        )
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let secret =
            <KemT as Kem>::PrivateKey::from_bytes(bytes).map_err(|_| KeyError::BadSecretKey)?;
        let public = PublicKey(KemT::sk_to_pk(&secret));
        Ok(SecretKey { secret, public })
    }

    /// The secret bytes, in a buffer that is wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secret bytes, only which key this is.
        write!(f, "SecretKey(for {})", self.public_key().fingerprint())
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not a valid X25519 public key (expected 32 bytes)")]
    BadPublicKey,
    #[error("not a valid X25519 secret key (expected 32 bytes)")]
    BadSecretKey,
}

mod hex_16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 16 bytes of hex"))
    }
}
