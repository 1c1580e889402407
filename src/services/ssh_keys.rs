//! An SSH agent of our own for `--ssh ID=KEYFILE[,KEYFILE…]`: the private
//! keys are read into memory (never written anywhere) and the agent
//! protocol (draft-miller-ssh-agent) is answered in this process, as
//! buildx's `sshprovider` does with Go's in-memory keyring. Like the
//! forwarded agents, it is read-only: it lists its keys and signs; every
//! other request gets `SSH_AGENT_FAILURE`.
//!
//! Keys are OpenSSH private keys (`ssh-keygen`'s format) read with the
//! `ssh-key` crate: Ed25519, ECDSA P-256/P-384 and RSA. RSA signs with
//! SHA-256 or SHA-512 as the client asks (`rsa-sha2-256`/`-512`); the
//! SHA-1 `ssh-rsa` signature, which OpenSSH no longer accepts, is refused.
//! Passphrase-protected keys are refused with a hint to use ssh-agent.

use std::path::{Path, PathBuf};

use signature::Signer;
use ssh_key::private::KeypairData;
use ssh_key::PrivateKey;

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
const SSH_AGENT_RSA_SHA2_256: u32 = 2;
const SSH_AGENT_RSA_SHA2_512: u32 = 4;

/// Why a key file cannot serve as an agent key.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("cannot read the key file {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{} is not an OpenSSH private key: {error}", path.display())]
    Parse { path: PathBuf, error: ssh_key::Error },
    #[error("{} is protected by a passphrase; load it into ssh-agent and pass the agent's socket instead", path.display())]
    Encrypted { path: PathBuf },
    #[error("{} is not a regular file (a FIFO, a device, a folder); a key file must be one", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is larger than {MAX_KEY_FILE_SIZE} bytes, more than any OpenSSH private key", path.display())]
    TooLarge { path: PathBuf },
}

/// The largest key file read: 64 KiB. An OpenSSH private key is a few KiB
/// (a 16384-bit RSA key, the largest ssh-keygen makes, is under 13 KiB);
/// the bound keeps `--ssh default=/dev/zero`-like mistakes from filling
/// memory.
pub const MAX_KEY_FILE_SIZE: u64 = 64 << 10;

/// Reads a key file: a regular file (opened without blocking, so a FIFO
/// is refused rather than waited on) of at most [`MAX_KEY_FILE_SIZE`] bytes.
fn read_key_file(path: &Path) -> Result<String, KeyProblem> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read = |error| KeyProblem::Read { path: path.to_owned(), error };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(read)?;
    if !file.metadata().map_err(read)?.is_file() {
        return Err(KeyProblem::NotAFile { path: path.to_owned() });
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_SIZE + 1).read_to_string(&mut text).map_err(read)?;
    if text.len() as u64 > MAX_KEY_FILE_SIZE {
        return Err(KeyProblem::TooLarge { path: path.to_owned() });
    }
    Ok(text)
}

/// One loaded key: the public key blob the agent lists, and the key.
struct Key {
    blob: Vec<u8>,
    comment: String,
    private: PrivateKey,
}

/// The keys of one `--ssh` id.
pub(crate) struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("KeyRing").field("keys", &self.keys.len()).finish()
    }
}

/// Reads and checks one private key file.
fn load_key(path: &Path) -> Result<Key, KeyProblem> {
    let text = read_key_file(path)?;
    let private =
        PrivateKey::from_openssh(text.trim()).map_err(|error| KeyProblem::Parse { path: path.to_owned(), error })?;
    if private.is_encrypted() {
        return Err(KeyProblem::Encrypted { path: path.to_owned() });
    }
    let blob = private.public_key().to_bytes().map_err(|error| KeyProblem::Parse { path: path.to_owned(), error })?;
    // The comment ssh-add -l shows: the key's own, else the file name, as
    // Go's keyring gets it from buildkit's sshprovider.
    let comment = if private.comment().is_empty() { path.display().to_string() } else { private.comment().to_owned() };
    Ok(Key { blob, comment, private })
}

/// Checks that every file is a usable key (at parse time, before anything
/// is sent).
pub(crate) fn check_keys(paths: &[PathBuf]) -> Result<(), KeyProblem> {
    paths.iter().try_for_each(|path| load_key(path).map(drop))
}

impl KeyRing {
    /// Loads `paths` into memory.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<KeyRing, KeyProblem> {
        Ok(KeyRing { keys: paths.iter().map(|path| load_key(path)).collect::<Result<_, _>>()? })
    }

    /// The answer to one agent request (`frame`: length prefix included),
    /// length prefix included.
    pub(crate) fn answer(&self, frame: &[u8]) -> Vec<u8> {
        let body = match frame.get(4) {
            Some(&SSH_AGENTC_REQUEST_IDENTITIES) => Some(self.identities()),
            Some(&SSH_AGENTC_SIGN_REQUEST) => self.sign(&frame[5..]),
            _ => None,
        };
        let body = body.unwrap_or_else(|| vec![SSH_AGENT_FAILURE]);
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn identities(&self) -> Vec<u8> {
        let mut body = vec![SSH_AGENT_IDENTITIES_ANSWER];
        body.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for key in &self.keys {
            put_string(&mut body, &key.blob);
            put_string(&mut body, key.comment.as_bytes());
        }
        body
    }

    /// `string key_blob, string data, uint32 flags` → a signature, or None
    /// (a failure) for an unknown key or an algorithm we will not use.
    fn sign(&self, mut request: &[u8]) -> Option<Vec<u8>> {
        let blob = take_string(&mut request)?;
        let data = take_string(&mut request)?;
        let flags = request.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let key = self.keys.iter().find(|key| key.blob == blob)?;
        let (algorithm, signature) = match key.private.key_data() {
            KeypairData::Rsa(keypair) => {
                use rsa::signature::SignatureEncoding;
                let private = rsa::RsaPrivateKey::try_from(keypair).ok()?;
                if flags & SSH_AGENT_RSA_SHA2_512 != 0 {
                    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private);
                    ("rsa-sha2-512".to_owned(), signer.try_sign(data).ok()?.to_vec())
                } else if flags & SSH_AGENT_RSA_SHA2_256 != 0 {
                    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
                    ("rsa-sha2-256".to_owned(), signer.try_sign(data).ok()?.to_vec())
                } else {
                    tracing::debug!("refused an ssh-rsa (SHA-1) signature request");
                    return None;
                }
            }
            _ => {
                let signature: ssh_key::Signature = key.private.try_sign(data).ok()?;
                (signature.algorithm().as_str().to_owned(), signature.as_bytes().to_vec())
            }
        };
        let mut encoded = Vec::new();
        put_string(&mut encoded, algorithm.as_bytes());
        put_string(&mut encoded, &signature);
        let mut body = vec![SSH_AGENT_SIGN_RESPONSE];
        put_string(&mut body, &encoded);
        Some(body)
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let bytes = input.get(4..4 + len)?;
    *input = &input[4 + len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::Verifier;

    /// An Ed25519 key made for these tests (`ssh-keygen -t ed25519 -N ''`).
    const ED25519: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBGHOiSOB5kb3zkC8+gyWDBKcpORutLzxAJ7xn22JCs0QAAAJj2QUBq9kFA
agAAAAtzc2gtZWQyNTUxOQAAACBGHOiSOB5kb3zkC8+gyWDBKcpORutLzxAJ7xn22JCs0Q
AAAEDaPitpj1dG4P5V/hirFztkfZd9YJY/p12S0jF6I48FkUYc6JI4HmRvfOQLz6DJYMEp
yk5G60vPEAnvGfbYkKzRAAAAEWZidWlsZC10ZXN0QGxvY2FsAQIDBA==
-----END OPENSSH PRIVATE KEY-----
";

    fn frame(message_type: u8, body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        out.push(message_type);
        out.extend_from_slice(body);
        out
    }

    fn ring() -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, ED25519).unwrap();
        let ring = KeyRing::load(&[path]).unwrap();
        (dir, ring)
    }

    #[test]
    fn key_files_are_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        // A FIFO nobody writes would block a plain read forever.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(check_keys(&[fifo]), Err(KeyProblem::NotAFile { .. })));
        // /dev/zero never ends.
        let err = check_keys(&[PathBuf::from("/dev/zero")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero is not a regular file (a FIFO, a device, a folder); a key file must be one"
        );
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
        assert!(matches!(check_keys(&[big]), Err(KeyProblem::TooLarge { .. })));
    }

    #[test]
    fn lists_and_signs_with_its_key() {
        let (_dir, ring) = ring();
        let answer = ring.answer(&frame(SSH_AGENTC_REQUEST_IDENTITIES, &[]));
        assert_eq!(answer[4], SSH_AGENT_IDENTITIES_ANSWER);
        let mut rest = &answer[5..];
        assert_eq!(&rest[..4], &1u32.to_be_bytes());
        rest = &rest[4..];
        let blob = take_string(&mut rest).unwrap().to_vec();
        assert_eq!(take_string(&mut rest).unwrap(), b"fbuild-test@local");
        let public = ssh_key::PublicKey::from_bytes(&blob).unwrap();

        let mut request = Vec::new();
        put_string(&mut request, &blob);
        put_string(&mut request, b"data to sign");
        request.extend_from_slice(&0u32.to_be_bytes());
        let answer = ring.answer(&frame(SSH_AGENTC_SIGN_REQUEST, &request));
        assert_eq!(answer[4], SSH_AGENT_SIGN_RESPONSE);
        let mut rest = &answer[5..];
        let mut encoded = take_string(&mut rest).unwrap();
        let algorithm = std::str::from_utf8(take_string(&mut encoded).unwrap()).unwrap().to_owned();
        let bytes = take_string(&mut encoded).unwrap();
        assert_eq!(algorithm, "ssh-ed25519");
        let signature = ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, bytes.to_vec()).unwrap();
        Verifier::verify(public.key_data(), b"data to sign", &signature).expect("a valid signature");
    }

    #[test]
    fn refuses_what_it_does_not_do() {
        let (_dir, ring) = ring();
        // Add a key, remove all keys, lock: all refused.
        for message_type in [17u8, 19, 22] {
            assert_eq!(ring.answer(&frame(message_type, &[])), vec![0, 0, 0, 1, SSH_AGENT_FAILURE]);
        }
        // A key it does not hold.
        let mut request = Vec::new();
        put_string(&mut request, b"not a key");
        put_string(&mut request, b"data");
        assert_eq!(ring.answer(&frame(SSH_AGENTC_SIGN_REQUEST, &request)), vec![0, 0, 0, 1, SSH_AGENT_FAILURE]);
        // A truncated request.
        assert_eq!(ring.answer(&frame(SSH_AGENTC_SIGN_REQUEST, &[0, 0])), vec![0, 0, 0, 1, SSH_AGENT_FAILURE]);
    }

    #[test]
    fn bad_key_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(check_keys(std::slice::from_ref(&missing)), Err(KeyProblem::Read { .. })));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key").unwrap();
        let err = check_keys(std::slice::from_ref(&junk)).unwrap_err().to_string();
        assert!(err.contains("is not an OpenSSH private key"), "{err}");
    }
}
