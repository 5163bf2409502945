//! RSA signature verification (RS*, PS*).
//!
//! The `rsa` crate still parses the key (so the keys refused, and why, are what they were), but
//! the public operation s^e mod n is ours: `rsa` 0.9's num-bigint-dig costs ≈ 650 µs per
//! RSA-2048 verification in Envoy's V8 and `rsa` 0.10 (crypto-bigint) ≈ 310 µs, where this
//! Montgomery arithmetic in radix 2^28 with lazy carries, its constants prepared once per key at
//! configure time, costs ≈ 115 µs (wasm32 has a native 64-bit multiply but no 64×64→128 one,
//! so u64 limbs would need an emulated u128; 28-bit limbs leave room to add up a column of
//! products without carrying). Preparing a key (R^2 mod n) costs about one verification. The
//! EMSA-PKCS1-v1_5 comparison and EMSA-PSS check follow RFC 8017 and accept exactly what
//! `rsa` 0.9's `verify` accepted (tested against it in `jwt_key`'s tests).
//!
//! Everything here is public: the key, the signature and the signed input. Nothing needs to be
//! constant-time, and nothing is.

use sha2::Digest;

/// DigestInfo prefixes (DER of the AlgorithmIdentifier and the OCTET STRING header) of
/// EMSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1).
pub(crate) const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
pub(crate) const SHA384_DIGEST_INFO: [u8; 19] =
    [0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30];
pub(crate) const SHA512_DIGEST_INFO: [u8; 19] =
    [0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40];

/// An RSA public key ready to verify: n prepared for Montgomery arithmetic, and e.
pub struct RsaKey {
    modulus: Modulus,
    /// At most 2^33 - 1 (the `rsa` crate refuses larger ones).
    e: u64,
}

impl RsaKey {
    pub(crate) fn new(key: &rsa::RsaPublicKey) -> Option<RsaKey> {
        use rsa::traits::PublicKeyParts as _;
        let e_bytes = key.e().to_bytes_be();
        if e_bytes.len() > 8 {
            return None;
        }
        let e = e_bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Some(RsaKey { modulus: Modulus::new(&key.n().to_bytes_be())?, e })
    }

    /// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.2): the signature is n's length in bytes and < n, and
    /// s^e mod n is exactly 0x00 0x01 0xff.. 0x00 DigestInfo H(input).
    pub(crate) fn verify_pkcs1v15<D: Digest>(&self, digest_info: &[u8], input: &[u8], signature: &[u8]) -> bool {
        let k = self.modulus.bytes();
        let hash = D::digest(input);
        let t_len = digest_info.len() + hash.len();
        if k < t_len + 11 || !self.modulus.less_than_n(signature) {
            return false;
        }
        let Some(em) = self.modulus.public_op(signature, self.e) else { return false };
        let ps_len = k - t_len - 3;
        let expected = [0x00u8, 0x01]
            .iter()
            .chain(std::iter::repeat_n(&0xffu8, ps_len))
            .chain(std::iter::once(&0x00u8))
            .chain(digest_info)
            .chain(hash.iter());
        em.len() == k && em.iter().eq(expected)
    }

    /// RSASSA-PSS (RFC 8017 §8.1.2, §9.1.2) with MGF1 of the same hash and a salt of the hash's
    /// length (RFC 7518 §3.5). As `rsa` 0.9 did: a signature >= n is reduced mod n rather than
    /// refused, and when n's bit length is 1 mod 8 the leading octet of the k-octet EM is not
    /// looked at.
    pub(crate) fn verify_pss<D: Digest>(&self, input: &[u8], signature: &[u8]) -> bool {
        let m_hash = D::digest(input);
        let h_len = m_hash.len();
        let s_len = h_len;
        let Some(em_full) = self.modulus.public_op(signature, self.e) else { return false };
        let em_bits = self.modulus.bits() - 1;
        let em_len = em_bits.div_ceil(8);
        let Some(em) = em_full.get(em_full.len() - em_len..) else { return false };
        if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
            return false;
        }
        let db_len = em_len - h_len - 1;
        let (Some(masked_db), Some(h)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else { return false };
        // The leftmost 8·emLen - emBits bits of maskedDB are zero.
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = !(0xffu8 >> unused_bits);
        if masked_db.first().is_some_and(|&b| b & top_mask != 0) {
            return false;
        }
        let mut db = masked_db.to_vec();
        mgf1_xor::<D>(h, &mut db);
        if let Some(first) = db.first_mut() {
            *first &= 0xff >> unused_bits;
        }
        // DB = PS (zeros) || 0x01 || salt.
        let ps_len = em_len - h_len - s_len - 2;
        let (Some(ps), Some(&one), Some(salt)) = (db.get(..ps_len), db.get(ps_len), db.get(ps_len + 1..)) else {
            return false;
        };
        if ps.iter().any(|&b| b != 0) || one != 0x01 {
            return false;
        }
        let h2 = D::new().chain_update([0u8; 8]).chain_update(&m_hash).chain_update(salt).finalize();
        h2.as_slice() == h
    }
}

/// db ^= MGF1(seed, db.len()) (RFC 8017 B.2.1).
fn mgf1_xor<D: Digest>(seed: &[u8], db: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(db.chunks_mut(<D as Digest>::output_size())) {
        let mask = D::new().chain_update(seed).chain_update(counter.to_be_bytes()).finalize();
        for (b, m) in chunk.iter_mut().zip(mask.iter()) {
            *b ^= m;
        }
    }
}

/// Limb width: 28-bit limbs in u64 words, so that a column of up to 256 products (each < 2^56)
/// adds up in a u64 without a carry (a 4096-bit modulus has 147 limbs).
const LIMB_BITS: u32 = 28;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;

/// An odd modulus n > 2 and its Montgomery constants, with R = 2^(28·len) where len limbs hold
/// any number of n's byte length.
pub(crate) struct Modulus {
    /// n, little-endian 28-bit limbs.
    n: Vec<u64>,
    /// -n^-1 mod 2^28.
    n0: u64,
    /// R^2 mod n.
    rr: Vec<u64>,
    /// n's length in bytes and in bits.
    bytes: usize,
    bits: usize,
}

/// a >= b, for limb slices of one length.
fn limbs_ge(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// a = (a - b) mod 2^(28·len), for limb slices of one length.
fn limbs_sub(a: &mut [u64], b: &[u64]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        // x | 2^28 >= 2^28 > y + borrow: no underflow.
        let d = (*x | (1 << LIMB_BITS)) - y - borrow;
        *x = d & LIMB_MASK;
        borrow = 1 - (d >> LIMB_BITS);
    }
}

/// Big-endian bytes to `len` little-endian 28-bit limbs; `None` if the value does not fit.
fn limbs_from_be(be: &[u8], len: usize) -> Option<Vec<u64>> {
    let mut out = vec![0u64; len];
    for (i, &b) in be.iter().rev().enumerate() {
        if b == 0 {
            continue;
        }
        let bit = 8 * i;
        let (word, shift) = (bit / LIMB_BITS as usize, bit % LIMB_BITS as usize);
        let v = u64::from(b) << shift;
        *out.get_mut(word)? |= v & LIMB_MASK;
        if v >> LIMB_BITS != 0 {
            *out.get_mut(word + 1)? |= v >> LIMB_BITS;
        }
    }
    Some(out)
}

impl Modulus {
    /// n in big-endian bytes (leading zeros allowed); `None` unless n is odd and > 2.
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let be = n_be.get(n_be.iter().position(|&b| b != 0)?..)?;
        let bits = be.len() * 8 - be.first()?.leading_zeros() as usize;
        let bytes = be.len();
        let len = (8 * bytes).div_ceil(LIMB_BITS as usize);
        let n = limbs_from_be(be, len)?;
        let low = *n.first()?;
        if low & 1 == 0 || bits < 2 {
            return None;
        }
        // Newton's iteration for n^-1 mod 2^64: each step doubles the correct low bits.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(low.wrapping_mul(inv)));
        }
        let mut m = Modulus { n0: inv.wrapping_neg() & LIMB_MASK, rr: Vec::new(), bytes, bits, n };
        m.rr = m.r_squared();
        Some(m)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn bits(&self) -> usize {
        self.bits
    }

    /// R^2 mod n: 2^(bits-1) doubled up to 2R mod n, then Montgomery products, since
    /// mont(R·2^a, R·2^b) = R·2^(a+b), up to R·2^(28·len) = R^2.
    fn r_squared(&self) -> Vec<u64> {
        let len = self.n.len();
        let limb_bits = LIMB_BITS as usize;
        let mut x = vec![0u64; len];
        if let Some(top) = x.get_mut((self.bits - 1) / limb_bits) {
            *top = 1 << ((self.bits - 1) % limb_bits);
        }
        for _ in 0..(limb_bits * len + 2 - self.bits) {
            self.double(&mut x);
        }
        let target = limb_bits * len;
        let two_r = x.clone();
        let mut acc = x;
        let mut tmp = vec![0u64; len];
        for i in (0..usize::BITS - 1 - target.leading_zeros()).rev() {
            self.mont_mul(&acc, &acc, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (target >> i) & 1 == 1 {
                self.mont_mul(&acc, &two_r, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        acc
    }

    /// x = 2x mod n, for x < n.
    fn double(&self, x: &mut [u64]) {
        let mut carry = 0u64;
        for w in x.iter_mut() {
            let v = (*w << 1) | carry;
            *w = v & LIMB_MASK;
            carry = v >> LIMB_BITS;
        }
        // With a carry out, x + R - n wraps to the right value.
        if carry == 1 || limbs_ge(x, &self.n) {
            limbs_sub(x, &self.n);
        }
    }

    fn mont_mul(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        self.montgomery(a, b, false, out);
    }

    fn mont_square(&self, a: &[u64], out: &mut [u64]) {
        self.montgomery(a, a, true, out);
    }

    /// out = a·b·R^-1 mod n, fully reduced, for a < R and b < n (a == b when `square`, which
    /// adds each cross product once, doubled). Product scanning (one column of a·b and of m·n at
    /// a time, each summed in a u64), interleaved with the Montgomery reduction.
    fn montgomery(&self, a: &[u64], b: &[u64], square: bool, out: &mut [u64]) {
        let len = self.n.len();
        let n = &self.n;
        let mut m = vec![0u64; len];
        // Sum of a_j·b_(i-j) over j in lo..=min(i, len-1).
        let column = |i: usize, lo: usize| -> u64 {
            let hi = i.min(len - 1);
            let (Some(aa), Some(bb)) = (a.get(lo..=hi), b.get(i - hi..=i - lo)) else { return 0 };
            if square {
                let k = aa.len();
                let cross: u64 = aa.iter().zip(bb.iter().rev()).take(k / 2).map(|(x, y)| x * y).sum();
                let middle = if k % 2 == 1 { aa.get(k / 2).map_or(0, |x| x * x) } else { 0 };
                2 * cross + middle
            } else {
                aa.iter().zip(bb.iter().rev()).map(|(x, y)| x * y).sum()
            }
        };
        let mut carry = 0u64;
        for i in 0..len {
            let sa = column(i, 0);
            let sm: u64 = match (m.get(..i), n.get(1..=i)) {
                (Some(mm), Some(nn)) => mm.iter().zip(nn.iter().rev()).map(|(x, y)| x * y).sum(),
                _ => 0,
            };
            let low = (sa & LIMB_MASK) + (sm & LIMB_MASK) + (carry & LIMB_MASK);
            let high = (sa >> LIMB_BITS) + (sm >> LIMB_BITS) + (carry >> LIMB_BITS);
            // m_i makes this column 0 mod 2^28.
            let mi = low.wrapping_mul(self.n0) & LIMB_MASK;
            if let Some(slot) = m.get_mut(i) {
                *slot = mi;
            }
            carry = high + ((low + mi * n.first().copied().unwrap_or(0)) >> LIMB_BITS);
        }
        for i in len..2 * len {
            let lo = i + 1 - len;
            let sa = column(i, lo);
            let sm: u64 = match (m.get(lo..), n.get(lo..)) {
                (Some(mm), Some(nn)) => mm.iter().zip(nn.iter().rev()).map(|(x, y)| x * y).sum(),
                _ => 0,
            };
            let low = (sa & LIMB_MASK) + (sm & LIMB_MASK) + (carry & LIMB_MASK);
            let high = (sa >> LIMB_BITS) + (sm >> LIMB_BITS) + (carry >> LIMB_BITS);
            if let Some(o) = out.get_mut(i - len) {
                *o = low & LIMB_MASK;
            }
            carry = high + (low >> LIMB_BITS);
        }
        // The result is < 2n: one subtraction at most (a carry is R, absorbed by the wrap).
        if carry != 0 || limbs_ge(out, n) {
            limbs_sub(out, n);
        }
    }

    /// s^e mod n as n's length in big-endian bytes, for a signature s of exactly that length
    /// (s >= n is reduced, as `BigUint::modpow` does). `None` for another length or e = 0.
    pub(crate) fn public_op(&self, s_be: &[u8], e: u64) -> Option<Vec<u8>> {
        if s_be.len() != self.bytes || e == 0 {
            return None;
        }
        let len = self.n.len();
        let s = limbs_from_be(s_be, len)?;
        // s·R mod n (s < 2^(8·bytes) <= R).
        let mut base = vec![0u64; len];
        self.mont_mul(&s, &self.rr, &mut base);
        let mut acc = base.clone();
        let mut tmp = vec![0u64; len];
        for i in (0..u64::BITS - 1 - e.leading_zeros()).rev() {
            self.mont_square(&acc, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (e >> i) & 1 == 1 {
                self.mont_mul(&acc, &base, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Out of the Montgomery domain: acc·1·R^-1.
        let mut one = vec![0u64; len];
        if let Some(w) = one.first_mut() {
            *w = 1;
        }
        self.mont_mul(&acc, &one, &mut tmp);
        let mut out = vec![0u8; self.bytes];
        for (i, o) in out.iter_mut().rev().enumerate() {
            let bit = 8 * i;
            let (word, shift) = (bit / LIMB_BITS as usize, bit % LIMB_BITS as usize);
            let v = tmp.get(word).copied().unwrap_or(0) | (tmp.get(word + 1).copied().unwrap_or(0) << LIMB_BITS);
            *o = (v >> shift) as u8;
        }
        Some(out)
    }

    /// Whether s (big-endian) is < n; false when it is longer than n's byte length.
    pub(crate) fn less_than_n(&self, s_be: &[u8]) -> bool {
        s_be.len() <= self.bytes && limbs_from_be(s_be, self.n.len()).is_some_and(|s| !limbs_ge(&s, &self.n))
    }
}
