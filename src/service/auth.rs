//! Who may do what (SPEC §6 "Tokens and roles"): a bearer token names a
//! role; each endpoint needs one permission.

use crate::records::tokens::Role;

/// What an endpoint does, as the role table of SPEC §6 divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Reports, history, listings, export, digest, verify, policy, checkpoint.
    Read,
    /// check, reserve, release.
    Desk,
    /// Sales imports.
    SalesImport,
    /// Reference imports, withdraw, screening clear, remit, close.
    Officer,
}

/// Whether `role` may do what needs `permission`.
pub fn may(role: Role, permission: Permission) -> bool {
    match permission {
        Permission::Read => true,
        Permission::Desk => matches!(role, Role::Desk | Role::Officer),
        Permission::SalesImport => matches!(role, Role::Importer | Role::Officer),
        Permission::Officer => role == Role::Officer,
    }
}

/// The secret of an `Authorization: Bearer <secret>` header value.
pub fn bearer_secret(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// Whether an `Idempotency-Key` is 1–128 visible ASCII characters.
pub fn idempotency_key_ok(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        use Permission::*;
        let table = [
            (Role::Auditor, [true, false, false, false]),
            (Role::Desk, [true, true, false, false]),
            (Role::Importer, [true, false, true, false]),
            (Role::Officer, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (permission, expected) in
                [Read, Desk, SalesImport, Officer].into_iter().zip(allowed)
            {
                assert_eq!(may(role, permission), expected, "{role:?} {permission:?}");
            }
        }
    }

    #[test]
    fn bearer_and_keys() {
        assert_eq!(bearer_secret(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_secret(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_secret(Some("Basic abc")), None);
        assert_eq!(bearer_secret(Some("Bearer ")), None);
        assert_eq!(bearer_secret(None), None);
        assert!(idempotency_key_ok("k-1"));
        assert!(!idempotency_key_ok(""));
        assert!(!idempotency_key_ok("a b"));
        assert!(!idempotency_key_ok(&"x".repeat(129)));
        assert!(idempotency_key_ok(&"x".repeat(128)));
    }
}
