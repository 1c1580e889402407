//! Hashes, bcrypt, RSA decryption and UUIDs (go-cty-funcs' `crypto` and
//! `uuid`). Hashes are of the string's UTF-8 bytes, in lower-case hex.

use base64::Engine;
use hcl::eval::FuncDef;
use hcl::Value;
use sha2::Digest;

use super::{fixed, integer, string, variadic};

fn hex_digest<D: Digest>(text: &str) -> Value {
    Value::from(hex::encode(D::digest(text.as_bytes())))
}

pub(super) fn md5() -> FuncDef {
    fixed(1, |a| Ok(hex_digest::<md5::Md5>(&string(&a, 0)?)))
}

pub(super) fn sha1() -> FuncDef {
    fixed(1, |a| Ok(hex_digest::<sha1::Sha1>(&string(&a, 0)?)))
}

pub(super) fn sha256() -> FuncDef {
    fixed(1, |a| Ok(hex_digest::<sha2::Sha256>(&string(&a, 0)?)))
}

pub(super) fn sha512() -> FuncDef {
    fixed(1, |a| Ok(hex_digest::<sha2::Sha512>(&string(&a, 0)?)))
}

/// `bcrypt(string [, cost])`: a `$2a$` hash (Go's), cost 10 by default;
/// the salt is random, so each call differs.
pub(super) fn bcrypt() -> FuncDef {
    variadic(1, |a| {
        if a.len() > 2 {
            return Err("bcrypt() takes no more than two arguments".into());
        }
        let cost = if a.len() > 1 { integer(&a, 1)? } else { 10 };
        let cost = u32::try_from(cost).map_err(|_| format!("invalid cost {cost}"))?;
        let hash = ::bcrypt::hash_with_result(string(&a, 0)?, cost)
            .map_err(|e| format!("error occurred generating password: {e}"))?;
        Ok(Value::from(hash.format_for_version(::bcrypt::Version::TwoA)))
    })
}

/// `rsadecrypt(base64 ciphertext, PEM private key)`: PKCS #1 v1.5, with a
/// PKCS #1 key as Go's `x509.ParsePKCS1PrivateKey` reads.
pub(super) fn rsadecrypt() -> FuncDef {
    fixed(2, |a| {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let text = string(&a, 0)?;
        let cipher = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| format!("failed to decode input {text:?}: cipher text must be base64-encoded"))?;
        let pem = string(&a, 1)?;
        if pem.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(
                "failed to parse key: password protected keys are not supported. Please decrypt the key prior to use"
                    .into(),
            );
        }
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|e| format!("failed to parse key: {e}"))?;
        let plain = key.decrypt(rsa::Pkcs1v15Encrypt, &cipher).map_err(|e| format!("failed to decrypt: {e}"))?;
        String::from_utf8(plain).map(Value::from).map_err(|_| "the decrypted text is not valid UTF-8".into())
    })
}

pub(super) fn uuidv4() -> FuncDef {
    fixed(0, |_| Ok(Value::from(uuid::Uuid::new_v4().to_string())))
}

/// `uuidv5(namespace, name)`: the namespace is `dns`, `url`, `oid`, `x500`
/// or a UUID.
pub(super) fn uuidv5() -> FuncDef {
    fixed(2, |a| {
        let namespace = string(&a, 0)?;
        let namespace = match namespace.as_str() {
            "dns" => uuid::Uuid::NAMESPACE_DNS,
            "url" => uuid::Uuid::NAMESPACE_URL,
            "oid" => uuid::Uuid::NAMESPACE_OID,
            "x500" => uuid::Uuid::NAMESPACE_X500,
            other => {
                uuid::Uuid::parse_str(other).map_err(|e| format!("uuidv5() doesn't support namespace {other} ({e})"))?
            }
        };
        Ok(Value::from(uuid::Uuid::new_v5(&namespace, string(&a, 1)?.as_bytes()).to_string()))
    })
}
