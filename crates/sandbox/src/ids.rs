//! Identifier generation.

/// The 57-character alphabet of Python's `shortuuid` (no `0 1 I O l`). Every `pidx`
/// and transaction id in Khalti's samples uses it (khalti.md §3.2).
pub(crate) const ALPHABET: &[u8; 57] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Length of a Khalti `pidx` / transaction id.
pub(crate) const ID_LEN: usize = 22;

/// A random 22-character id, encoded like `shortuuid` encodes a UUID: a random 128-bit
/// number in base 57, most significant digit first, zero-padded.
pub(crate) fn short_id() -> String {
    short_id_from(rand::random())
}

/// `n` in base 57, 22 digits, most significant first (`shortuuid`'s encoding).
pub(crate) fn short_id_from(mut n: u128) -> String {
    let mut out = [ALPHABET[0]; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 57) as usize];
        n /= 57;
    }
    out.iter().map(|&b| b as char).collect()
}

/// `n` random ASCII letters and digits (Chapa references and checkout tokens,
/// chapa.md §1).
pub(crate) fn alphanumeric(n: usize) -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphanumeric_ids() {
        let a = alphanumeric(45);
        assert_eq!(a.len(), 45);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, alphanumeric(45));
    }

    #[test]
    fn alphabet_is_base57_without_ambiguous_characters() {
        let mut sorted = ALPHABET.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 57);
        for c in b"01IOl" {
            assert!(!ALPHABET.contains(c), "{}", *c as char);
        }
    }

    #[test]
    fn ids_have_22_alphabet_characters_and_differ() {
        let a = short_id();
        let b = short_id();
        assert_eq!(a.len(), ID_LEN);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }
}
