//! RSA signature verification (RS*, PS*).
//!
//! The `rsa` crate still parses the key (so the keys refused, and why, are what they were), but
//! the public operation s^e mod n is ours: `rsa` 0.9's num-bigint-dig costs ≈ 650 µs per
//! RSA-2048 verification in Envoy's V8 and `rsa` 0.10 (crypto-bigint) ≈ 310 µs. Ours is
//! Montgomery arithmetic in radix 2^28, its constants prepared once per key at configure time,
//! by product scanning: each column Σ a_j·b_(i-j) of a product is a dot product of `a` and a
//! reversed copy of `b` (and likewise m·n with a reversed n), summed 4 limbs at a time into two
//! 64-bit lanes. On wasm32 that is SIMD128's `i64x2.extmul_{low,high}_i32x4_u` (4 products of
//! u32 limbs in two instructions; on x64, V8 shuffles both operands of each into place for a
//! `pmuludq`), enabled per function; natively the same grouping runs as scalar code, so the
//! tests run the same sums.
//! 28-bit limbs keep a column's products (< 2^56) from overflowing a lane without carries, and
//! wasm32 has no 64×64→128 multiply for u64 limbs. In node 20's V8 (`make bench-v8`) this costs ≈ 49 µs per
//! RSA-2048 verification where the same radix in scalar u64 code (≈ 115 µs in Envoy) cost
//! ≈ 95–99 µs (3072 bits: 92 against 200 µs; 4096 bits: 151 against 350 µs); about 2/3 of it
//! is the multiplies (dropping m·n's, for a measure, saved 21 of 51 µs), the rest the columns'
//! sequential bookkeeping. Squarings add each cross product once, doubled; the last
//! multiplication, by s itself, also leaves the Montgomery domain. Preparing a key (R^2 mod n)
//! costs about one verification. The
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

/// Limb width: 28-bit limbs held in u32 words, so that a product is < 2^56 and a column of
/// products adds up in 64-bit lanes without a carry (see `MAX_LIMBS`).
const LIMB_BITS: u32 = 28;
const LIMB_MASK: u32 = (1 << LIMB_BITS) - 1;
const LIMB_MASK64: u64 = LIMB_MASK as u64;
/// Zero limbs after every operand: a column is summed in groups of 4 limbs, and its last group
/// may reach 3 limbs past the column's end, where one of the two operands is always zero.
const PAD: usize = 4;
/// The largest modulus, in limbs (6720 bits; the `rsa` crate refuses keys over 4096 bits, 147
/// limbs). A column adds up in two 64-bit lanes, each receiving at most len + 8 products'
/// worth of < 2^56, so len + 8 <= 256: a multiplication's a·b and m·n put at most
/// 2·⌈len/4⌉ each in a lane; a squaring's m·n as many, and its doubled cross products
/// (< 2^57, worth 2 each) at most ⌈len/2⌉'s worth in whole groups and 3 more (6) in lane 0.
const MAX_LIMBS: usize = 240;

/// An odd modulus n > 2 and its Montgomery constants, with R = 2^(28·len) where len limbs hold
/// any number of n's byte length.
pub(crate) struct Modulus {
    /// n, little-endian 28-bit limbs (len of them).
    n: Vec<u32>,
    /// n's limbs in reverse (most significant first), then PAD zeros.
    n_rev: Vec<u32>,
    /// -n^-1 mod 2^28.
    n0: u32,
    /// R^2 mod n, reversed like `n_rev`.
    rr_rev: Vec<u32>,
    /// n's length in bytes and in bits.
    bytes: usize,
    bits: usize,
}

/// a >= b, for limb slices of one length.
fn limbs_ge(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// a = (a - b) mod 2^(28·len), over b's length.
fn limbs_sub(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u32;
    for (x, &y) in a.iter_mut().zip(b) {
        // x | 2^28 >= 2^28 > y + borrow: no underflow.
        let d = (*x | (1 << LIMB_BITS)) - y - borrow;
        *x = d & LIMB_MASK;
        borrow = 1 - (d >> LIMB_BITS);
    }
}

/// Big-endian bytes to `len` little-endian 28-bit limbs followed by PAD zeros; `None` if the
/// value does not fit in `len` limbs.
fn limbs_from_be(be: &[u8], len: usize) -> Option<Vec<u32>> {
    let mut out = vec![0u32; len + PAD];
    let limbs = out.get_mut(..len)?;
    for (i, &b) in be.iter().rev().enumerate() {
        if b == 0 {
            continue;
        }
        let bit = 8 * i;
        let (word, shift) = (bit / LIMB_BITS as usize, bit % LIMB_BITS as usize);
        let v = u64::from(b) << shift;
        *limbs.get_mut(word)? |= (v & LIMB_MASK64) as u32;
        if v >> LIMB_BITS != 0 {
            *limbs.get_mut(word + 1)? |= (v >> LIMB_BITS) as u32;
        }
    }
    Some(out)
}

/// dst = src's first `len` limbs in reverse order, each shifted left by `shift` (0, or 1 for
/// the doubled operand of a squaring); dst's padding is left as it is (zero).
fn reverse_into(src: &[u32], len: usize, shift: u32, dst: &mut [u32]) {
    for (d, &s) in dst.iter_mut().zip(src.iter().take(len).rev()) {
        *d = s << shift;
    }
}

/// One column's sums in two lanes: x·y over its first `ab` limbs and m·n over the first `mn`.
/// Whole groups of 4, which the zero padding makes exact (past the column's end one of the two
/// operands is 0: the padding, or m's limbs not made yet), but for a squaring's half column (the
/// doubled cross products of x·y; x == a), whose last 1 to 3 products are added in scalar code
/// to lane 0 (a masked group cost 3–5 % more: LLVM made it two i64x2.mul, which V8 emulates).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
#[inline]
fn column<const SQUARE: bool>(x: &[u32], y: &[u32], ab: usize, m: &[u32], n: &[u32], mn: usize) -> lanes::Acc {
    let mut acc = lanes::zero();
    if SQUARE {
        let whole = ab / 4 * 4;
        if let (Some(xs), Some(ys)) = (x.get(..whole), y.get(..whole)) {
            acc = dot(acc, xs, ys);
        }
        if let (Some(xs), Some(ys)) = (x.get(whole..ab), y.get(whole..ab)) {
            let rest: u64 = xs.iter().zip(ys).map(|(&p, &q)| u64::from(p) * u64::from(q)).sum();
            acc = lanes::add_to_lane_0(acc, rest);
        }
    } else {
        let groups = ab.div_ceil(4) * 4;
        if let (Some(xs), Some(ys)) = (x.get(..groups), y.get(..groups)) {
            acc = dot(acc, xs, ys);
        }
    }
    let groups = mn.div_ceil(4) * 4;
    if let (Some(ms), Some(ns)) = (m.get(..groups), n.get(..groups)) {
        acc = dot(acc, ms, ns);
    }
    acc
}

/// acc + Σ x_k·y_k over whole groups of 4 (x and y of one length, a multiple of 4), a group
/// at a time through `lanes::group`.
#[inline]
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn dot(mut acc: lanes::Acc, x: &[u32], y: &[u32]) -> lanes::Acc {
    for (xs, ys) in x.chunks_exact(4).zip(y.chunks_exact(4)) {
        if let (Ok(&xa), Ok(&ya)) = (<&[u32; 4]>::try_from(xs), <&[u32; 4]>::try_from(ys)) {
            acc = lanes::group(acc, xa, ya);
        }
    }
    acc
}

/// Column sums in two 64-bit lanes: lane l holds the products of limbs l and l + 2 of each
/// group of 4. On wasm32 a v128, with `i64x2.extmul_{low,high}_i32x4_u` (4 products in two
/// instructions); elsewhere the same sums in scalar code, so that native tests run the same
/// grouping and padding.
#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::{
        u32x4, u64x2, u64x2_add, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane, v128,
    };

    pub(super) type Acc = v128;

    #[inline]
    #[target_feature(enable = "simd128")]
    pub(super) fn zero() -> Acc {
        u64x2(0, 0)
    }

    #[inline]
    #[target_feature(enable = "simd128")]
    pub(super) fn lanes(acc: Acc) -> (u64, u64) {
        (u64x2_extract_lane::<0>(acc), u64x2_extract_lane::<1>(acc))
    }

    #[inline]
    #[target_feature(enable = "simd128")]
    pub(super) fn group(acc: Acc, x: [u32; 4], y: [u32; 4]) -> Acc {
        let xv = u32x4(x[0], x[1], x[2], x[3]);
        let yv = u32x4(y[0], y[1], y[2], y[3]);
        u64x2_add(acc, u64x2_add(u64x2_extmul_low_u32x4(xv, yv), u64x2_extmul_high_u32x4(xv, yv)))
    }

    #[inline]
    #[target_feature(enable = "simd128")]
    pub(super) fn add_to_lane_0(acc: Acc, v: u64) -> Acc {
        u64x2_add(acc, u64x2(v, 0))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    pub(super) type Acc = [u64; 2];

    pub(super) fn zero() -> Acc {
        [0, 0]
    }

    pub(super) fn lanes(acc: Acc) -> (u64, u64) {
        (acc[0], acc[1])
    }

    pub(super) fn group(acc: Acc, x: [u32; 4], y: [u32; 4]) -> Acc {
        let ([x0, x1, x2, x3], [y0, y1, y2, y3]) = (x.map(u64::from), y.map(u64::from));
        [acc[0] + x0 * y0 + x2 * y2, acc[1] + x1 * y1 + x3 * y3]
    }

    pub(super) fn add_to_lane_0(acc: Acc, v: u64) -> Acc {
        [acc[0] + v, acc[1]]
    }
}

impl Modulus {
    /// n in big-endian bytes (leading zeros allowed); `None` unless n is odd and > 2.
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let be = n_be.get(n_be.iter().position(|&b| b != 0)?..)?;
        let bits = be.len() * 8 - be.first()?.leading_zeros() as usize;
        let bytes = be.len();
        let len = (8 * bytes).div_ceil(LIMB_BITS as usize);
        if len > MAX_LIMBS {
            return None;
        }
        let mut n = limbs_from_be(be, len)?;
        n.truncate(len);
        let low = *n.first()?;
        if low & 1 == 0 || bits < 2 {
            return None;
        }
        // Newton's iteration for n^-1 mod 2^32: each step doubles the correct low bits.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(low.wrapping_mul(inv)));
        }
        let mut n_rev = vec![0u32; len + PAD];
        reverse_into(&n, len, 0, &mut n_rev);
        let mut m = Modulus { n0: inv.wrapping_neg() & LIMB_MASK, rr_rev: Vec::new(), bytes, bits, n, n_rev };
        let rr = m.r_squared();
        let mut rr_rev = vec![0u32; len + PAD];
        reverse_into(&rr, len, 0, &mut rr_rev);
        m.rr_rev = rr_rev;
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
    fn r_squared(&self) -> Vec<u32> {
        let len = self.n.len();
        let limb_bits = LIMB_BITS as usize;
        let mut x = vec![0u32; len + PAD];
        if let Some(top) = x.get_mut((self.bits - 1) / limb_bits) {
            *top = 1 << ((self.bits - 1) % limb_bits);
        }
        for _ in 0..(limb_bits * len + 2 - self.bits) {
            self.double(&mut x);
        }
        let target = limb_bits * len;
        let mut two_r_rev = vec![0u32; len + PAD];
        reverse_into(&x, len, 0, &mut two_r_rev);
        let mut acc = x;
        let mut acc_rev = vec![0u32; len + PAD];
        let mut tmp = vec![0u32; len + PAD];
        let mut m = vec![0u32; len + PAD];
        for i in (0..usize::BITS - 1 - target.leading_zeros()).rev() {
            reverse_into(&acc, len, 1, &mut acc_rev);
            self.montgomery(&acc, &acc_rev, true, &mut m, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (target >> i) & 1 == 1 {
                self.montgomery(&acc, &two_r_rev, false, &mut m, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        acc
    }

    /// x = 2x mod n, for x < n.
    fn double(&self, x: &mut [u32]) {
        let len = self.n.len();
        let Some(x) = x.get_mut(..len) else { return };
        let mut carry = 0u32;
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

    /// out = a·b·R^-1 mod n, fully reduced, for a < R and b < n, where `a` is in limb order
    /// and `b_rev` in reverse (so that every column a_j·b_(i-j) is the dot product of two
    /// contiguous runs); both, `m` (scratch) and `out` are len + PAD limbs, padding zero. When
    /// `square`, a == b and `b_rev` holds 2a reversed: each cross product is added once,
    /// already doubled.
    fn montgomery(&self, a: &[u32], b_rev: &[u32], square: bool, m: &mut [u32], out: &mut [u32]) {
        if square {
            self.montgomery_columns::<true>(a, b_rev, m, out);
        } else {
            self.montgomery_columns::<false>(a, b_rev, m, out);
        }
    }

    /// Product scanning (a column of a·b and of m·n at a time, in two 64-bit lanes),
    /// interleaved with the Montgomery reduction: the low half of the columns (i < len), where
    /// each makes its m_i, then the high half, which is the result.
    #[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
    fn montgomery_columns<const SQUARE: bool>(&self, a: &[u32], b_rev: &[u32], m: &mut [u32], out: &mut [u32]) {
        let len = self.n.len();
        let n_rev = &self.n_rev;
        let n0 = u64::from(self.n0);
        let n_low = u64::from(self.n.first().copied().unwrap_or(0));
        let square = |i: usize| -> u64 {
            let x = if SQUARE && i % 2 == 0 { a.get(i / 2).copied().unwrap_or(0) } else { 0 };
            u64::from(x) * u64::from(x)
        };
        m.fill(0);
        let mut carry = 0u64;
        // Column i < len: a_j·b_(i-j) for j in 0..=i, b_(i-j) = b_rev[len-1-i+j]; m_j·n_(i-j)
        // for j < i (m_i·n_0 comes below; m's later limbs are still 0).
        for i in 0..len {
            let start = len - 1 - i;
            let (Some(b), Some(n)) = (b_rev.get(start..), n_rev.get(start..)) else { return };
            let ab = if SQUARE { i.div_ceil(2) } else { i + 1 };
            let (s0, s1) = lanes::lanes(column::<SQUARE>(a, b, ab, m, n, i));
            let diagonal = square(i);
            let low = (s0 & LIMB_MASK64) + (s1 & LIMB_MASK64) + (diagonal & LIMB_MASK64) + (carry & LIMB_MASK64);
            let high = (s0 >> LIMB_BITS) + (s1 >> LIMB_BITS) + (diagonal >> LIMB_BITS) + (carry >> LIMB_BITS);
            // m_i makes this column 0 mod 2^28.
            let mi = (low * n0) & LIMB_MASK64;
            if let Some(slot) = m.get_mut(i) {
                *slot = mi as u32;
            }
            carry = high + ((low + mi * n_low) >> LIMB_BITS);
        }
        // Column i >= len: j in i+1-len..len, b_(i-j) = b_rev[j-(i+1-len)], and the same for m·n.
        for i in len..2 * len {
            let lo = i + 1 - len;
            let (Some(x), Some(mm)) = (a.get(lo..), m.get(lo..)) else { return };
            let k = 2 * len - 1 - i;
            let ab = if SQUARE { i.div_ceil(2).saturating_sub(lo) } else { k };
            let (s0, s1) = lanes::lanes(column::<SQUARE>(x, b_rev, ab, mm, n_rev, k));
            let diagonal = square(i);
            let low = (s0 & LIMB_MASK64) + (s1 & LIMB_MASK64) + (diagonal & LIMB_MASK64) + (carry & LIMB_MASK64);
            let high = (s0 >> LIMB_BITS) + (s1 >> LIMB_BITS) + (diagonal >> LIMB_BITS) + (carry >> LIMB_BITS);
            if let Some(o) = out.get_mut(i - len) {
                *o = (low & LIMB_MASK64) as u32;
            }
            carry = high + (low >> LIMB_BITS);
        }
        // The result is < 2n: one subtraction at most (a carry is R, absorbed by the wrap).
        if let Some(out) = out.get_mut(..len) {
            if carry != 0 || limbs_ge(out, &self.n) {
                limbs_sub(out, &self.n);
            }
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
        let mut m = vec![0u32; len + PAD];
        let mut tmp = vec![0u32; len + PAD];
        let mut acc_rev = vec![0u32; len + PAD];
        // base = s·R mod n (s < 2^(8·bytes) <= R).
        let mut base = vec![0u32; len + PAD];
        self.montgomery(&s, &self.rr_rev, false, &mut m, &mut base);
        let mut base_rev = vec![0u32; len + PAD];
        reverse_into(&base, len, 0, &mut base_rev);
        let mut acc = base;
        let mut result = None;
        for i in (0..u64::BITS - 1 - e.leading_zeros()).rev() {
            reverse_into(&acc, len, 1, &mut acc_rev);
            self.montgomery(&acc, &acc_rev, true, &mut m, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (e >> i) & 1 == 1 {
                if i == 0 {
                    // The last multiplication, by s itself rather than s·R, leaves the
                    // Montgomery domain: s^(e-1)·R · s · R^-1 = s^e.
                    reverse_into(&acc, len, 0, &mut acc_rev);
                    self.montgomery(&s, &acc_rev, false, &mut m, &mut tmp);
                    result = Some(std::mem::take(&mut tmp));
                    break;
                }
                self.montgomery(&acc, &base_rev, false, &mut m, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        let out = match result {
            Some(out) => out,
            None => {
                // e even, or 1: out of the Montgomery domain as acc·1·R^-1.
                let mut one_rev = vec![0u32; len + PAD];
                if let Some(w) = one_rev.get_mut(len - 1) {
                    *w = 1;
                }
                self.montgomery(&acc, &one_rev, false, &mut m, &mut tmp);
                tmp
            }
        };
        let mut be = vec![0u8; self.bytes];
        for (i, o) in be.iter_mut().rev().enumerate() {
            let bit = 8 * i;
            let (word, shift) = (bit / LIMB_BITS as usize, bit % LIMB_BITS as usize);
            let v = u64::from(out.get(word).copied().unwrap_or(0))
                | (u64::from(out.get(word + 1).copied().unwrap_or(0)) << LIMB_BITS);
            *o = (v >> shift) as u8;
        }
        Some(be)
    }

    /// Whether s (big-endian) is < n; false when it is longer than n's byte length.
    pub(crate) fn less_than_n(&self, s_be: &[u8]) -> bool {
        let len = self.n.len();
        s_be.len() <= self.bytes
            && limbs_from_be(s_be, len).is_some_and(|s| s.get(..len).is_some_and(|s| !limbs_ge(s, &self.n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column sums' headroom at the largest modulus, all of whose limbs are 2^28 - 1 (and
    /// so are the multiplicand's and, for the square, nearly so): in this unoptimised build the
    /// native lanes add with overflow checks, so a sum that would wrap fails the test.
    #[test]
    fn column_sums_do_not_overflow_at_max_limbs() {
        let bytes = MAX_LIMBS * LIMB_BITS as usize / 8;
        let n = vec![0xffu8; bytes];
        let modulus = Modulus::new(&n).unwrap();
        assert_eq!(modulus.n.len(), MAX_LIMBS);
        assert!(Modulus::new(&vec![0xffu8; bytes + 1]).is_none());
        let nb = rsa::BigUint::from_bytes_be(&n);
        // R = 2^(28·len) = n + 1: R^-1 = 1 mod n.
        assert_eq!(rsa::BigUint::from(1u8) << (LIMB_BITS as usize * MAX_LIMBS), &nb + 1u8);
        let len = MAX_LIMBS;
        let all_ones = limbs_from_be(&n, len).unwrap();
        let mut m = vec![0u32; len + PAD];
        let mut out = vec![0u32; len + PAD];
        // (R - 1)·n·R^-1 = 0 mod n, every a·b product the largest there is.
        modulus.montgomery(&all_ones, &modulus.n_rev, false, &mut m, &mut out);
        assert!(out.iter().all(|&w| w == 0));
        // (n - 1)^2·R^-1 mod n by the squaring path.
        let mut a = all_ones.clone();
        a[0] -= 1;
        let mut a2_rev = vec![0u32; len + PAD];
        reverse_into(&a, len, 1, &mut a2_rev);
        modulus.montgomery(&a, &a2_rev, true, &mut m, &mut out);
        let got = out[..len].iter().rev().fold(rsa::BigUint::from(0u8), |acc, &w| (acc << LIMB_BITS as usize) + w);
        assert_eq!(got, ((&nb - 1u8) * (&nb - 1u8)) % &nb);
        // And a whole exponentiation there: (n - 1)^65537 = n - 1.
        let mut s = n.clone();
        s[bytes - 1] = 0xfe;
        assert_eq!(modulus.public_op(&s, 65537).unwrap(), s);
    }
}
