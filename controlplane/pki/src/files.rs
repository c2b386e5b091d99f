//! Where the PKI's files live and how they are read and written: new files
//! only (never overwritten), keys private to their owner.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::PkiError;

/// Mode of key files: owner read/write only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files: public.
pub(crate) const CERT_MODE: u32 = 0o644;

/// `dir/ca.crt`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.crt")
}

/// `dir/ca.key`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// `dir/NAME.crt`.
pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.crt"))
}

/// `dir/NAME.key`.
pub fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key"))
}

/// Create `path` with `mode`, failing if it exists.
pub(crate) fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists {
                    path: path.to_owned(),
                }
            } else {
                PkiError::Write {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| PkiError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Fail with [`PkiError::Exists`] if `path` exists.
pub(crate) fn refuse_existing(path: &Path) -> Result<(), PkiError> {
    if path.exists() {
        return Err(PkiError::Exists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Read the CA's certificate and key, with a clear error when there is no CA.
pub(crate) fn read_ca(dir: &Path) -> Result<(String, String), PkiError> {
    for path in [ca_cert_path(dir), ca_key_path(dir)] {
        if !path.exists() {
            return Err(PkiError::NoCa {
                dir: dir.to_owned(),
                path,
            });
        }
    }
    Ok((read(&ca_cert_path(dir))?, read(&ca_key_path(dir))?))
}
