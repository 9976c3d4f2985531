//! Argon2id password hashing (the crate's defaults: 19 MiB, 2 passes, 1 lane).

use std::sync::{Arc, LazyLock};

use tokio::sync::{Semaphore, oneshot};

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

/// HMAC-SHA256 of a password under the server's key, hex: what an `Idempotency-Key`'s
/// fingerprint compares of a body holding a password, so the stored fingerprint cannot be
/// searched for the password without that key (as a bare SHA-256 could).
pub fn keyed_digest(key: &[u8], password: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"dossier idempotency password\0");
    mac.update(password.as_bytes());
    format!("{:x}", mac.finalize().into_bytes())
}

/// A hash to verify against when the e-mail is unknown, so that answer takes as long as a
/// wrong password and the timing tells nothing about which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("dossier-timing-equalizer").expect("hashing a constant cannot fail"));

pub fn burn_verification_time(password: &str) {
    let _ = verify(password, &DUMMY_HASH);
}

/// Hashes at once, at most one per core.
static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    ))
});

/// Runs Argon2 work (tens of milliseconds of CPU) on a thread of its own, never on the blocking
/// pool that database reads wait for: a burst of logins would otherwise queue every read behind
/// it. `None` if the work panicked.
pub async fn off_the_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    // The thread holds the turn: a request that goes away does not free it while the hash runs.
    let turn = HASHING.clone().acquire_owned().await.ok()?;
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name("argon2".into())
        .spawn(move || {
            let _ = done.send(work());
            drop(turn);
        })
        .ok()?;
    result.await.ok()
}
