//! The secret that authenticates the compile cache's entries: made at random on first use, kept
//! in a file only the host's user may read (on Windows, an access list of the account alone).

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The SHA-256 of a component file's bytes.
pub type ContentHash = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

/// `bytes` in lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the cache key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or writing the key file failed.
    #[error("cannot use the compile cache key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{path} is not a compile cache key (64 hexadecimal digits); delete it and a new one is made")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// Others may read or change the key, so they could forge entries.
    #[error("the compile cache key {path} is open to other users ({how}), or delete it and a new one is made")]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// What lets them in, and how to close it.
        how: String,
    },
}

/// The secret that authenticates compile cache entries: 32 random bytes the host makes on first
/// use and keeps in a file only its user may read, outside the functions and cache folders.
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// A new random key, kept in memory only.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::getrandom(&mut key)?;
        Ok(Self(key))
    }

    /// The key in `path`, made (random, readable by this user only) if the file does not exist.
    /// Two hosts starting at once agree on one key: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        match std::fs::read(path) {
            Ok(bytes) => return Self::parse(path, &bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let key = Self::random().map_err(|e| io(std::io::Error::other(e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(io)?;
        // Written whole under a temporary name, then linked into place: a second host starting at
        // the same moment either wins the link or reads the first one's key.
        let temporary = dir.join(format!(".cache-key-{}-{}", std::process::id(), hex(&key.0[..4])));
        let written = private_file(&temporary).and_then(|mut file| {
            file.write_all(format!("{}\n", hex(&key.0)).as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!("made a new compile cache key in {}", path.display());
                Ok(key)
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(path, &std::fs::read(path).map_err(io)?)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        check_private(path)?;
        let malformed = || KeyError::Malformed { path: path.to_owned() };
        let text = std::str::from_utf8(bytes).map_err(|_| malformed())?.trim();
        if text.len() != 64 {
            return Err(malformed());
        }
        let mut key = [0; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| malformed())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| malformed())?;
        }
        Ok(Self(key))
    }

    /// The MAC of an entry: over what it was compiled from, for which engine, and what it holds.
    pub(super) fn tag(&self, content: &ContentHash, compatibility: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"sse-wasm compile cache entry\0");
        mac.update(content);
        mac.update(compatibility.as_bytes());
        mac.update(&(artifact.len() as u64).to_le_bytes());
        mac.update(artifact);
        mac
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(windows)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    super::access::make_private(path)?;
    Ok(file)
}

#[cfg(not(any(unix, windows)))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refuses a key file that other users may read or write.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?.permissions().mode();
    if mode & 0o077 != 0 {
        let how = format!("mode {:o}; `chmod 600` it", mode & 0o777);
        return Err(KeyError::Exposed { path: path.to_owned(), how });
    }
    Ok(())
}

/// Refuses a key file whose access list lets in accounts other than the host's own, the local
/// system and the administrators.
#[cfg(windows)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    match super::access::open_to_others(path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(KeyError::Exposed {
            path: path.to_owned(),
            how: "its access list lets other accounts in; remove them in its Security properties".to_owned(),
        }),
        Err(source) => Err(KeyError::Io { path: path.to_owned(), source }),
    }
}

#[cfg(not(any(unix, windows)))]
fn check_private(_: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys/cache.key");
        let made = CacheKey::load_or_create(&path).expect("made");
        let read = CacheKey::load_or_create(&path).expect("read");
        assert_eq!(made.0, read.0);
        assert_eq!(std::fs::read_to_string(&path).expect("text").trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let error = CacheKey::load_or_create(&path).expect_err("exposed");
            assert!(error.to_string().contains("chmod 600"), "{error}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(CacheKey::load_or_create(&path), Err(KeyError::Malformed { .. })));
        assert_ne!(CacheKey::random().expect("random").0, made.0);
    }
}
