//! The secret parts of credentials, which never print, and the one form of them Steward
//! cannot take: a value another Jenkins encrypted with its master key.
//!
//! [`SecretString`] and [`SecretBytes`] print `***` in `Debug`, have no `Display`, and
//! compare in constant time. They serialize as the plain secret: that form is for the
//! controller's store, which encrypts what it writes.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose};
use subtle::ConstantTimeEq;

/// Base64 as Java's decoders read it: the standard alphabet, padding optional, unused bits
/// of the last character ignored.
pub(crate) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Secret text: a password, a secret text, a private key, a passphrase.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(secret.into())
    }

    /// The secret, for the few places that must use it (a build's environment, a key file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(***)")
    }
}

/// A secret file's content.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretBytes(#[serde(with = "crate::byte_buf")] Vec<u8>);

impl SecretBytes {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        SecretBytes(secret.into())
    }

    /// The content, for the few places that must use it (the file a build reads).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The content as `<secretBytes>` holds it in the stored form: base64, with padding.
    pub(crate) fn to_base64(&self) -> String {
        general_purpose::STANDARD.encode(&self.0)
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(***)")
    }
}

/// The version byte Jenkins' `hudson.util.Secret` writes first in its encrypted form.
const SECRET_PAYLOAD_V1: u8 = 1;
/// The bytes before the IV in that form: the version, then the IV's and the data's lengths
/// as big-endian 32-bit integers.
const SECRET_V1_HEADER: usize = 1 + 4 + 4;

/// Whether `value` is text as Jenkins writes a `Secret` encrypted: `{`, base64, `}`, the
/// bytes being version 1, the IV's length, the data's length, the IV, the data, with
/// lengths that add up. Jenkins reads any other value, braces or not, as the secret itself,
/// and so does Steward (Jenkins' pre-2017 unbraced form cannot be told from plain text
/// without the key; Steward takes it as plain text).
pub(crate) fn is_encrypted_secret(value: &str) -> bool {
    let Some(inner) = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
    else {
        return false;
    };
    let Ok(payload) = LENIENT_BASE64.decode(inner) else {
        return false;
    };
    if payload.len() < SECRET_V1_HEADER || payload[0] != SECRET_PAYLOAD_V1 {
        return false;
    }
    let length = |at: usize| {
        u32::from_be_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ])
    };
    let (iv, data) = (u64::from(length(1)), u64::from(length(5)));
    SECRET_V1_HEADER as u64 + iv + data == payload.len() as u64
}

/// Whether `value` is the encrypted form of the credentials plugin's `SecretBytes`: base64
/// in braces. Its plain form is bare base64, which has no braces, so braces alone tell.
pub(crate) fn is_encrypted_bytes(value: &str) -> bool {
    let value = value.trim();
    value.len() >= 2 && value.starts_with('{') && value.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{…}` around `bytes` in base64, as Jenkins writes an encrypted value.
    fn braced(bytes: &[u8]) -> String {
        format!("{{{}}}", general_purpose::STANDARD.encode(bytes))
    }

    #[test]
    fn jenkins_v1_secrets_are_recognised() {
        // Version 1, a 16-byte IV, 16 bytes of data: the shape of `{AQAAABAAAAAQ…}`.
        let mut payload = vec![1, 0, 0, 0, 16, 0, 0, 0, 16];
        payload.extend([7u8; 32]);
        let value = braced(&payload);
        assert!(value.starts_with("{AQAAABAAAAAQ"));
        assert!(is_encrypted_secret(&value));
        assert!(is_encrypted_secret(&format!("  {value}\n")));
    }

    #[test]
    fn other_values_are_plain_text() {
        let mut payload = vec![1, 0, 0, 0, 16, 0, 0, 0, 16];
        payload.extend([7u8; 31]);
        // Lengths that do not add up, another version, no braces, not base64.
        assert!(!is_encrypted_secret(&braced(&payload)));
        payload.push(7);
        payload[0] = 2;
        assert!(!is_encrypted_secret(&braced(&payload)));
        assert!(!is_encrypted_secret("AQAAABAAAAAQ"));
        assert!(!is_encrypted_secret("{not base64!}"));
        assert!(!is_encrypted_secret("{}"));
        assert!(!is_encrypted_secret("{AQ==}"));
        // Lengths near u32::MAX must not overflow.
        assert!(!is_encrypted_secret(&braced(&[
            1, 255, 255, 255, 255, 255, 255, 255, 255
        ])));
    }

    #[test]
    fn encrypted_bytes_are_braced() {
        assert!(is_encrypted_bytes("{c2VjcmV0}"));
        assert!(!is_encrypted_bytes("c2VjcmV0"));
        assert!(!is_encrypted_bytes("{"));
    }

    #[test]
    fn debug_hides_and_comparison_is_exact() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "SecretString(***)");
        assert_eq!(
            format!("{:?}", SecretBytes::new(b"x".to_vec())),
            "SecretBytes(***)"
        );
        assert_eq!(s, SecretString::new("hunter2"));
        assert_ne!(s, SecretString::new("hunter3"));
        assert_ne!(s, SecretString::new("hunter"));
    }
}
