//! Passwords for the page: argon2id hashes in the PHC string format
//! (`$argon2id$v=19$...`), made by `fieldcast passwd` and checked at login.
//! Without a configured hash, a one-time setup code (printed to the journal
//! at start) logs in once.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shorter passwords are refused by `fieldcast passwd`.
pub const MIN_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// An argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `s` is a hash this module can check (for config validation).
pub fn is_hash(s: &str) -> bool {
    PasswordHash::new(s).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Whether `password` matches `hash` (constant time inside argon2).
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A one-time setup code: 12 characters from an alphabet without look-alikes.
pub fn setup_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..12).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$") && is_hash(&h), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h) && !verify("", &h));
        assert!(!is_hash("plain text") && !verify("x", "plain text"));
        assert!(matches!(hash("short"), Err(PasswordError::TooShort)));
        assert_ne!(hash("correct horse").unwrap(), h, "a fresh salt each time");
        let code = setup_code();
        assert_eq!(code.len(), 12);
        assert_ne!(code, setup_code());
    }
}
