//! Session ids: 32 bytes from the operating system's seeded CSPRNG (Rand's
//! `ThreadRng`, ChaCha12), written as 64 lowercase hex digits. An id is a bearer
//! secret: logs show only [`short`] of it, metrics never carry it.

use rand::RngCore;

/// The length of an id, in characters.
pub const ID_LEN: usize = 64;

/// A fresh id: 256 random bits.
pub fn new_id() -> String {
    let mut bytes = [0_u8; ID_LEN / 2];
    rand::rng().fill_bytes(&mut bytes);
    let mut id = String::with_capacity(ID_LEN);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `id` has the shape of an id (64 lowercase hex digits).
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| HEX.contains(&b))
}

/// The first 8 characters of `id`, for logs.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_random_and_recognised() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_id(&a) && is_id(&b));
        assert!(!is_id(&a[1..]) && !is_id(&a.to_uppercase()) && !is_id("x"));
        assert_eq!(short(&a).len(), 8);
    }
}
