//! Jenkins' `H`: a value picked from a field's range, the same each time for the same job.
//!
//! Jenkins seeds `java.util.Random` with the MD5 of the job's full name, folded to 64 bits,
//! and each `H` in the spec draws one `nextInt(n)` from it, in the order the parser meets
//! them (line by line, field by field, left to right). To fire at the minutes Jenkins fires
//! at, both the fold and the generator are reproduced bit for bit here.

/// The pseudo-random sequence Jenkins' `Hash.from(seed)` yields.
#[derive(Debug, Clone)]
pub(super) struct JenkinsHash {
    random: JavaRandom,
}

impl JenkinsHash {
    /// The sequence for `seed`, a job's full name (`folder/job`).
    pub(super) fn from_seed(seed: &str) -> Self {
        JenkinsHash {
            random: JavaRandom::new(fold_md5(seed)),
        }
    }

    /// A value in `0..bound`; `bound` is at least 1.
    pub(super) fn next(&mut self, bound: u32) -> u32 {
        // Bounds are field sizes (at most 60), so the conversions never saturate.
        let bound = i32::try_from(bound).unwrap_or(i32::MAX).max(1);
        u32::try_from(self.random.next_int(bound)).unwrap_or(0)
    }
}

/// The MD5 of `seed`'s UTF-8 bytes, its second half XORed onto its first, read as a
/// big-endian signed 64-bit number: Jenkins' seed for `java.util.Random`.
pub(super) fn fold_md5(seed: &str) -> i64 {
    let mut digest = md5::compute(seed.as_bytes()).0;
    for i in 8..16 {
        digest[i % 8] ^= digest[i];
    }
    let mut folded = [0u8; 8];
    folded.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(folded)
}

/// `java.util.Random`: a 48-bit linear congruential generator (Knuth, TAOCP 3.2.1).
#[derive(Debug, Clone)]
pub(super) struct JavaRandom {
    state: u64,
}

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const ADDEND: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

impl JavaRandom {
    /// `new Random(seed)`: the seed is scrambled with the multiplier, as Java does.
    pub(super) fn new(seed: i64) -> Self {
        JavaRandom {
            state: (seed as u64 ^ MULTIPLIER) & MASK,
        }
    }

    /// `next(bits)`: the top `bits` bits of the next 48-bit state, as Java's signed `int`.
    fn next_bits(&mut self, bits: u32) -> i32 {
        self.state = self.state.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND) & MASK;
        // Java's `(int)(seed >>> (48 - bits))`: the low 32 bits, reinterpreted as signed.
        (self.state >> (48 - bits)) as u32 as i32
    }

    /// `nextInt(bound)` for `bound >= 1`: a multiply for powers of two, otherwise a modulo
    /// that rejects draws from the last, incomplete stretch of `0..2^31` so every value is
    /// equally likely. The rejection test relies on Java's wrapping `int` arithmetic.
    pub(super) fn next_int(&mut self, bound: i32) -> i32 {
        let bound = bound.max(1);
        let mut r = self.next_bits(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next_bits(31);
        }
    }
}
