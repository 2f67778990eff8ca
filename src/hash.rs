//! FNV-1a (64-bit), the crate's one non-cryptographic fingerprint: of a backbone's weights (so a
//! task never runs on the wrong one), of a data set (so `--resume` notices a changed folder), and
//! of a tensor's name (the key of its synthetic weights). It guards against accidents, not attacks.

/// FNV-1a's offset basis and prime.
const OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01B3;

/// An FNV-1a hash fed piece by piece.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(OFFSET)
    }
}

impl Fnv1a {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(PRIME);
        }
    }
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a of `bytes` in one go.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.feed(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_published_test_vectors() {
        // From the FNV reference (Fowler, Noll, Vo): FNV-1a 64 of "" and of "a".
        assert_eq!(super::fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(super::fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
