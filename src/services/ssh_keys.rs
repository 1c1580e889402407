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
//! RSA signatures are made by `ring`, whose private-key operations are
//! constant-time, not by the `rsa` crate (RUSTSEC-2023-0071, no fixed
//! release): a `RUN` step chooses what the agent signs, so a timing
//! side channel there is one the build can measure. ring signs with keys
//! of 2048, 3072 or 4096 bits (primes a multiple of 512 bits); others are
//! refused when the key file is read.
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
#[non_exhaustive]
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
    #[error("{} is an RSA key fbuild cannot sign with: {reason} (RSA keys of 2048, 3072 or 4096 bits are supported; load others into ssh-agent and pass the agent's socket instead)", path.display())]
    Rsa { path: PathBuf, reason: RsaProblem },
}

/// Why an RSA key cannot be signed with (the key's words; [`KeyProblem::Rsa`]
/// names the file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RsaProblem {
    #[error("{0} is not positive")]
    NotPositive(&'static str),
    #[error("its modulus has {0} bits")]
    ModulusBits(usize),
    #[error("a private part is longer than the modulus")]
    PartTooLong,
    #[error("a prime factor is 1")]
    PrimeIsOne,
    /// ring refused the components.
    #[error("{0}")]
    Rejected(String),
    #[error("its private parts do not match its public key")]
    Mismatch,
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
    /// For an RSA key, the same key as ring holds it (ring signs RSA).
    rsa: Option<ring::rsa::KeyPair>,
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
    let rsa = match private.key_data() {
        KeypairData::Rsa(keypair) => {
            Some(ring_rsa_key(keypair).map_err(|reason| KeyProblem::Rsa { path: path.to_owned(), reason })?)
        }
        _ => None,
    };
    Ok(Key { blob, comment, private, rsa })
}

/// The largest RSA modulus ring signs with, in bytes (4096 bits).
const RSA_MAX_BYTES: usize = 512;

/// An OpenSSH RSA key as ring's key pair. OpenSSH stores n, e, d, p, q and
/// q⁻¹ mod p but not the CRT exponents ring signs with, d mod (p-1) and
/// d mod (q-1): they are computed here with crypto-bigint, whose reduction
/// is constant-time in the secret dividend `d` (its time depends only on
/// the bit length of the divisor).
fn ring_rsa_key(keypair: &ssh_key::private::RsaKeypair) -> Result<ring::rsa::KeyPair, RsaProblem> {
    use crypto_bigint::{Encoding, NonZero, U4096};
    use zeroize::Zeroizing;

    fn positive<'a>(value: &'a ssh_key::Mpint, name: &'static str) -> Result<&'a [u8], RsaProblem> {
        value.as_positive_bytes().filter(|bytes| !bytes.is_empty()).ok_or(RsaProblem::NotPositive(name))
    }
    let (n, e) = (positive(&keypair.public.n, "n")?, positive(&keypair.public.e, "e")?);
    let d = positive(&keypair.private.d, "d")?;
    let (p, q) = (positive(&keypair.private.p, "p")?, positive(&keypair.private.q, "q")?);
    let q_inv = positive(&keypair.private.iqmp, "iqmp")?;
    // ring's own refusal would only say "PrivateModulusLenNotMultipleOf512Bits".
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if ![2048, 3072, 4096].contains(&bits) {
        return Err(RsaProblem::ModulusBits(bits));
    }
    if d.len() > RSA_MAX_BYTES || p.len() > RSA_MAX_BYTES || q.len() > RSA_MAX_BYTES {
        return Err(RsaProblem::PartTooLong);
    }
    let wide = |bytes: &[u8]| {
        let mut padded = Zeroizing::new([0u8; RSA_MAX_BYTES]);
        padded[RSA_MAX_BYTES - bytes.len()..].copy_from_slice(bytes);
        U4096::from_be_slice(&padded[..])
    };
    let d_wide = Zeroizing::new(wide(d));
    // d mod (prime - 1), as many bytes as the prime: ring wants it no longer.
    let crt_exponent = |prime: &[u8]| -> Result<Zeroizing<Vec<u8>>, RsaProblem> {
        let divisor = Option::<NonZero<U4096>>::from(NonZero::new(wide(prime).wrapping_sub(&U4096::ONE)))
            .ok_or(RsaProblem::PrimeIsOne)?;
        let remainder = Zeroizing::new(d_wide.rem(&divisor).to_be_bytes());
        Ok(Zeroizing::new(remainder[RSA_MAX_BYTES - prime.len()..].to_vec()))
    };
    let (d_p, d_q) = (crt_exponent(p)?, crt_exponent(q)?);
    let components = ring::rsa::KeyPairComponents {
        public_key: ring::rsa::PublicKeyComponents { n, e },
        d,
        p,
        q,
        dP: &d_p[..],
        dQ: &d_q[..],
        qInv: q_inv,
    };
    let key = ring::rsa::KeyPair::from_components(&components)
        .map_err(|rejected| RsaProblem::Rejected(rejected.to_string()))?;
    // ring checks dP and dQ only when it signs: sign once now, so a key file
    // whose parts disagree is refused when it is read, not in the middle
    // of a build.
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), b"fbuild", &mut signature)
        .map_err(|_| RsaProblem::Mismatch)?;
    Ok(key)
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
        let (algorithm, signature) = match &key.rsa {
            Some(rsa) => {
                let (algorithm, padding): (_, &'static dyn ring::signature::RsaEncoding) =
                    if flags & SSH_AGENT_RSA_SHA2_512 != 0 {
                        ("rsa-sha2-512", &ring::signature::RSA_PKCS1_SHA512)
                    } else if flags & SSH_AGENT_RSA_SHA2_256 != 0 {
                        ("rsa-sha2-256", &ring::signature::RSA_PKCS1_SHA256)
                    } else {
                        tracing::debug!("refused an ssh-rsa (SHA-1) signature request");
                        return None;
                    };
                let mut signature = vec![0; rsa.public().modulus_len()];
                // PKCS#1 v1.5 padding is deterministic: ring's random
                // source only blinds the private-key operation.
                rsa.sign(padding, &ring::rand::SystemRandom::new(), data, &mut signature).ok()?;
                (algorithm.to_owned(), signature)
            }
            None => {
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

    /// An RSA key made for these tests (`ssh-keygen -t rsa -b 2048 -N ''`).
    const RSA_2048: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn
NhAAAAAwEAAQAAAQEA5BHWlzE9TVK+rdKM8XYFhpgaiJrqOedGuCvqUB50JT7xuCGbwafq
kOf3MONMsvlUENL0ueebQxG7ktSPlvD5pId/pocbw9ZRy72ipOsR8imWqj+6+Jil4qDI9P
V9L+QCcLnBguuOWlCpJ6fcviys1rlrsBSi93ogcPLv1nqvHUjWYkZrtv4CPAPIvplC4DDq
vToyrbJ6Gim8f+Ehmlo3HKbdKkgXpPB4vDg03SMnWnd9dZ1wpgrE7mBzidJDdpNFjTMKXv
5UwEi5EuZuRa6Z+geJu/JD3+fbFT07T0UZPaycRIfq0Uxe/fUXgpbVFQLIBI9SZ7Q7vJxz
Obsr0EMjGQAAA9DKV6zfyles3wAAAAdzc2gtcnNhAAABAQDkEdaXMT1NUr6t0ozxdgWGmB
qImuo550a4K+pQHnQlPvG4IZvBp+qQ5/cw40yy+VQQ0vS555tDEbuS1I+W8Pmkh3+mhxvD
1lHLvaKk6xHyKZaqP7r4mKXioMj09X0v5AJwucGC645aUKknp9y+LKzWuWuwFKL3eiBw8u
/Weq8dSNZiRmu2/gI8A8i+mULgMOq9OjKtsnoaKbx/4SGaWjccpt0qSBek8Hi8ODTdIyda
d311nXCmCsTuYHOJ0kN2k0WNMwpe/lTASLkS5m5Frpn6B4m78kPf59sVPTtPRRk9rJxEh+
rRTF799ReCltUVAsgEj1JntDu8nHM5uyvQQyMZAAAAAwEAAQAAAQAjKe7sm75oZBgbI8nw
VrKOaHg61KvFZre8IKU9WhytO3G4YpIpvxKG6gTuSDVkqNWBzIzH9wI0ypChmF1VN+09pV
iUm+M3hB1TbPcdN1Mqg6gDstTIjHyTHxgs0IbPMfgAWluQLHJj0WjrQNHjjm7NooQMf3oK
7wz+bS52Yq8KNAy7ENisJ3ob4aG3Az0duT3uKGzkRyFqmrbu4MWyOuPlwU3680La8WdgsW
7EAApXIN5n4Fztt7Pwy9tCLXhebXJvCZSh/dWakWHnfPNTwXFL7nmLtIfPE7Rfg8pMyyv9
H/lIWsZuTaeXJRUay5im4vh92ZWsB4nI902g30KpHxs7AAAAgHfkqk8KpqLkqM1cyKhq0j
jVJwL81dWPaakavUWIvyEnWjeQAAHXGsRaKcgeywb7ScBqbNse7RyAY12MO0yu+Y+3Ql8n
oCshnIE4wHZwfX9jfimlrWja+NF9Klohx2ZXgyK0tFgNWtrWDVG5OY7S20j+7hW8NuLaST
nE0z8STHciAAAAgQDyCwJnZhfjaFBCBRolkyDtnAkeEub8+4rcgHnUp6RWeJ86TJyrZjfA
AfbcP0b7ojYi2CMkGaO4Cxuuf4HssvlDEqyFhMO0aRDCRLQRfrQkK+rYdI4ho87WwsO5pB
LxO8h7Ingq+5KIuovFlnhkafMu6FXT7cMIOONQ+A9xEbPS7wAAAIEA8TiOsvoo73qdz7/y
DqVCD1xkJHWaJ/Y+3bpSXy0+z7ASVZl/v/KOqC5iWKtEbeqd0Ge44cvdL0FK+bYedx6pQJ
ndY6LY1HHymM1jwhZyvOlkKe7036aoTTgCAT4Dry0TdUAbj56yEwwzlx2x5IBa8rz8yk1F
VOTEgcdUaSR9SncAAAAVZmJ1aWxkLXJzYS10ZXN0QGxvY2FsAQIDBAUG
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

    /// One sign request for `blob` with `flags`; the (algorithm, signature)
    /// answered, or None for a failure.
    fn sign_with(ring: &KeyRing, blob: &[u8], data: &[u8], flags: u32) -> Option<(String, Vec<u8>)> {
        let mut request = Vec::new();
        put_string(&mut request, blob);
        put_string(&mut request, data);
        request.extend_from_slice(&flags.to_be_bytes());
        let answer = ring.answer(&frame(SSH_AGENTC_SIGN_REQUEST, &request));
        if answer[4] != SSH_AGENT_SIGN_RESPONSE {
            return None;
        }
        let mut rest = &answer[5..];
        let mut encoded = take_string(&mut rest).unwrap();
        let algorithm = std::str::from_utf8(take_string(&mut encoded).unwrap()).unwrap().to_owned();
        Some((algorithm, take_string(&mut encoded).unwrap().to_vec()))
    }

    /// RSA signatures (made by ring) verify against the listed public key
    /// with the hash the client asked for; SHA-1 is refused.
    #[test]
    fn rsa_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_rsa");
        std::fs::write(&path, RSA_2048).unwrap();
        let keys = KeyRing::load(&[path]).unwrap();
        let blob = keys.keys[0].blob.clone();
        let public = ssh_key::PublicKey::from_bytes(&blob).unwrap();
        let rsa = public.key_data().rsa().expect("an RSA key");
        let components = ring::signature::RsaPublicKeyComponents {
            n: rsa.n.as_positive_bytes().unwrap(),
            e: rsa.e.as_positive_bytes().unwrap(),
        };
        let data = b"a session id the server sent";
        for (flags, name, verification) in [
            (SSH_AGENT_RSA_SHA2_256, "rsa-sha2-256", &ring::signature::RSA_PKCS1_2048_8192_SHA256),
            (SSH_AGENT_RSA_SHA2_512, "rsa-sha2-512", &ring::signature::RSA_PKCS1_2048_8192_SHA512),
        ] {
            let (algorithm, signature) = sign_with(&keys, &blob, data, flags).expect("signed");
            assert_eq!(algorithm, name);
            assert_eq!(signature.len(), 256);
            components.verify(verification, data, &signature).expect("a valid signature");
            assert!(components.verify(verification, b"other data", &signature).is_err());
        }
        assert_eq!(sign_with(&keys, &blob, data, 0), None, "ssh-rsa (SHA-1) is refused");
    }

    /// A key whose private parts do not belong to its public key is refused
    /// when it is read, not when a build asks for a signature.
    #[test]
    fn an_inconsistent_rsa_key_is_refused() {
        let mut private = PrivateKey::from_openssh(RSA_2048).unwrap();
        let KeypairData::Rsa(mut keypair) = private.key_data().clone() else { panic!("an RSA key") };
        // Another valid-looking d: one more than the real one.
        let mut d = keypair.private.d.as_positive_bytes().unwrap().to_vec();
        *d.last_mut().unwrap() ^= 2;
        keypair.private.d = ssh_key::Mpint::from_positive_bytes(&d).unwrap();
        private = PrivateKey::new(KeypairData::Rsa(keypair), "broken").unwrap();
        let KeypairData::Rsa(keypair) = private.key_data() else { unreachable!() };
        let reason = ring_rsa_key(keypair).expect_err("refused");
        assert!(matches!(reason, RsaProblem::Mismatch), "{reason}");
        assert!(reason.to_string().contains("do not match"), "{reason}");
    }
}
