//! Argon2id password hashing (the crate's defaults: 19 MiB, 2 passes, 1 lane).

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the e-mail is unknown, so that answer takes as long as a
/// wrong password and the timing tells nothing about which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("dossier-timing-equalizer").expect("hashing a constant cannot fail"));

pub fn burn_verification_time(password: &str) {
    let _ = verify(password, &DUMMY_HASH);
}
