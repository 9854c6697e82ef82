//! Signed checkpoints (SPEC §7): an Ed25519 signature over the ledger's
//! identity and head, so that an auditor or regulator who keeps them can
//! later prove the ledger was neither truncated nor rewritten.
//!
//! Key file: the signing key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`),
//! the form `openssl` reads and writes; mode 0600.

use crate::error::{Error, Result};
use crate::store::ledger::ChainHead;
use crate::store::verify::Anchor;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The DER prefix of an Ed25519 private key in PKCS#8 (RFC 8410), before
/// its 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The first line of every signed statement: what is signed, and its version.
pub const STATEMENT_TAG: &str = "qledger-checkpoint/v1";

/// A key's identity: the first 16 hex digits of SHA-256 of its raw public key.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(public.as_bytes()))[..16].to_string()
}

/// A new signing key, written to `path` (mode 0600; an existing file is
/// refused). Returns its public key.
pub fn keygen(path: &Path) -> Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|err| Error::Environment(format!("no randomness for a new key: {err}")))?;
    let key = SigningKey::from_bytes(&seed);
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => Error::BadInput(format!(
            "{} already exists; keygen never overwrites a key",
            path.display()
        )),
        _ => Error::Environment(format!("cannot create {}: {err}", path.display())),
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| Error::Environment(format!("cannot write {}: {err}", path.display())))?;
    Ok(key.verifying_key())
}

/// Reads a signing key written by `keygen` (or `openssl genpkey -algorithm ed25519`).
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Error::BadInput(format!("cannot read the key {}: {err}", path.display())))?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
        .filter(|der| der.len() == 48 && der[..16] == PKCS8_PREFIX)
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{} is not an Ed25519 private key in PKCS#8 PEM (as qledger keygen writes it)",
                path.display()
            ))
        })?;
    let seed: [u8; 32] = der[16..].try_into().expect("48 - 16 bytes");
    Ok(SigningKey::from_bytes(&seed))
}

/// A signed statement of a ledger's head (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Hex of the hash of entry 1: which ledger.
    pub ledger_id: String,
    /// Entries at the head.
    pub entries: i64,
    /// Hex of the hash of the last entry.
    pub head: String,
    /// When it was signed (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub signed_at: String,
    /// The signing key's id.
    pub key_id: String,
    /// The signing key's public key, hex.
    pub public_key: String,
    /// The signature, base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: the tag, the ledger id, entries, head and time, a
    /// line each.
    pub fn statement(ledger_id: &str, entries: i64, head: &str, signed_at: &str) -> String {
        format!("{STATEMENT_TAG}\n{ledger_id}\n{entries}\n{head}\n{signed_at}\n")
    }

    /// Signs `head` of the ledger whose entry 1 has hash `ledger_id`.
    pub fn sign(key: &SigningKey, ledger_id: &[u8; 32], head: ChainHead) -> Checkpoint {
        let signed_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let (ledger_id, head_hex) = (hex::encode(ledger_id), head.hash_hex());
        let message = Checkpoint::statement(&ledger_id, head.entries, &head_hex, &signed_at);
        let signature = key.sign(message.as_bytes());
        Checkpoint {
            ledger_id,
            entries: head.entries,
            head: head_hex,
            signed_at,
            key_id: key_id(&key.verifying_key()),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }

    /// The SPEC §7 JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ledger_id": self.ledger_id, "entries": self.entries, "head": self.head,
            "signed_at": self.signed_at, "key_id": self.key_id, "public_key": self.public_key,
            "signature": self.signature,
        })
    }

    /// Reads a checkpoint file (the JSON `checkpoint` prints).
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let bad =
            |why: String| Error::BadInput(format!("{}: not a checkpoint ({why})", path.display()));
        let text = std::fs::read_to_string(path).map_err(|err| bad(err.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| bad(err.to_string()))?;
        let field = |key: &str| -> Result<String> {
            json[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("no {key}")))
        };
        Ok(Checkpoint {
            ledger_id: field("ledger_id")?,
            entries: json["entries"]
                .as_i64()
                .ok_or_else(|| bad("no entries".to_string()))?,
            head: field("head")?,
            signed_at: field("signed_at")?,
            key_id: field("key_id")?,
            public_key: field("public_key")?,
            signature: field("signature")?,
        })
    }

    /// Checks the signature and, when `trusted` is not empty, that the key
    /// is one of them; returns the anchor the ledger must extend. Any
    /// failure is an integrity failure naming the file.
    pub fn check(&self, path: &Path, trusted: &[String]) -> Result<Anchor> {
        let fail = |why: &str| Error::Integrity(format!("checkpoint {}: {why}", path.display()));
        let public: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| fail("its public key is not 64 hex digits"))?;
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| fail("its public key is not valid"))?;
        if !trusted.is_empty()
            && !trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&self.public_key))
        {
            return Err(fail(&format!(
                "signed by key {} ({}), which is not a trusted key",
                self.key_id, self.public_key
            )));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| fail("its signature is not a base64 Ed25519 signature"))?;
        let message =
            Checkpoint::statement(&self.ledger_id, self.entries, &self.head, &self.signed_at);
        key.verify(message.as_bytes(), &signature).map_err(|_| {
            fail("its signature does not match its statement: it was altered or forged")
        })?;
        let head = crate::store::ledger::parse_digest(&format!("{}:{}", self.entries, self.head))
            .map_err(|why| fail(&why))?;
        Ok(Anchor {
            head,
            source: format!(
                "checkpoint {} (entries {}, signed at {} by key {})",
                path.display(),
                self.entries,
                self.signed_at,
                self.key_id
            ),
        })
    }
}
