//! ECDSA verification (ES256, ES384).
//!
//! The `p256`/`p384` crates parse the key and the signature and provide the field and scalar
//! arithmetic; the point arithmetic and the double-scalar multiplication u1·G + u2·Q are ours.
//! The crates' own `verify` (0.13) multiplies G and Q separately, each with 256 (384) doublings,
//! complete projective formulas and constant-time table scans, then inverts a field element:
//! ≈ 1 ms per ES256 verification in Envoy's V8. Here:
//! - each scalar is split into 16-bit chunks against tables of precomputed multiples of
//!   2^(16j)·P (for G once per VM, for Q once per key, on its first verification), so both
//!   scalars share one pass of 16 doublings, with signed-window (wNAF) additions;
//! - the tables hold affine points and the running sum is Jacobian (a = -3): a doubling is
//!   3M + 5S and a mixed addition 7M + 4S, against 12M+ for the complete formulas (public data:
//!   the exceptional cases are checked for, not avoided);
//! - the result is never made affine: x(R) = X/Z² is compared as X == r·Z² (or (r + n)·Z² when
//!   r + n < p), which saves the field inversion.
//!
//! Measured in node 20's V8 (the engine Envoy embeds), per verification: ES256 328 µs with the
//! previous projective version of this file, 120–140 µs now; ES384 2.1 ms, 0.82–0.86 ms. A key's
//! table costs ≈ 0.75 ms once (P-256; 3.8 ms for P-384). `make bench-v8` measures today's figures. What is left is ≈ 1,000 field multiplications at ≈ 95 ns (the
//! crate's 32-bit target code multiplies u64 limbs through an emulated u128).
//!
//! The steps otherwise are those of `ecdsa::hazmat::verify_prehashed` (z = H(input) reduced
//! mod n, u1 = z/s, u2 = r/s, accept when the x coordinate of u1·G + u2·Q reduced mod n is r),
//! so the same signatures verify (tested against the crates' own verification and Wycheproof in
//! `jwt_key`'s tests). Public data only: nothing here is constant-time.

/// Signed-window (wNAF, width `w`) digits of `chunk`, least significant first: each non-zero
/// digit is odd and below 2^(w-1) in magnitude, and any w consecutive digits hold at most one
/// non-zero one. `N` must exceed the chunk's bit length by one (the last carry).
pub(crate) fn wnaf<const N: usize>(chunk: u64, w: u32) -> [i8; N] {
    let mut out = [0i8; N];
    let mut k = i128::from(chunk);
    let full = 1i128 << w;
    let half = 1i128 << (w - 1);
    for slot in out.iter_mut() {
        if k == 0 {
            break;
        }
        if k & 1 == 1 {
            let mut d = k & (full - 1);
            if d >= half {
                d -= full;
            }
            k -= d;
            *slot = d as i8;
        }
        k >>= 1;
    }
    out
}

/// Multi-word helpers on little-endian u64 words (wasm32 has native 64-bit add and shift).
mod words {
    /// a >= b.
    pub fn ge<const W: usize>(a: &[u64; W], b: &[u64; W]) -> bool {
        for (x, y) in a.iter().rev().zip(b.iter().rev()) {
            if x != y {
                return x > y;
            }
        }
        true
    }

    /// a -= b (no borrow out: a >= b).
    pub fn sub<const W: usize>(a: &mut [u64; W], b: &[u64; W]) {
        let mut borrow = false;
        for (x, &y) in a.iter_mut().zip(b) {
            let (d, b1) = x.overflowing_sub(y);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            *x = d;
            borrow = b1 || b2;
        }
    }

    /// a = (a + carry·2^(64W)) / 2.
    pub fn half<const W: usize>(a: &mut [u64; W], carry: bool) {
        let mut high = u64::from(carry);
        for x in a.iter_mut().rev() {
            let low = *x & 1;
            *x = (*x >> 1) | (high << 63);
            high = low;
        }
    }

    /// a / 2 mod n, for a < n, n odd.
    pub fn half_mod<const W: usize>(a: &mut [u64; W], n: &[u64; W]) {
        if a.first().is_some_and(|w| w & 1 == 1) {
            let mut carry = false;
            for (x, &y) in a.iter_mut().zip(n) {
                let (s, c1) = x.overflowing_add(y);
                let (s, c2) = s.overflowing_add(u64::from(carry));
                *x = s;
                carry = c1 || c2;
            }
            half(a, carry);
        } else {
            half(a, false);
        }
    }

    /// a = a - b mod n, for a, b < n.
    pub fn sub_mod<const W: usize>(a: &mut [u64; W], b: &[u64; W], n: &[u64; W]) {
        if ge(a, b) {
            sub(a, b);
        } else {
            // a + n - b = n - (b - a), with b - a < n.
            let mut d = *b;
            sub(&mut d, a);
            *a = *n;
            sub(a, &d);
        }
    }

    /// a^-1 mod n for a prime n and 0 < a < n, by the binary extended Euclidean algorithm
    /// (variable time: public data only). `None` for a = 0.
    pub fn invert<const W: usize>(a: &[u64; W], n: &[u64; W]) -> Option<[u64; W]> {
        let is_zero = |x: &[u64; W]| x.iter().all(|&w| w == 0);
        let is_one = |x: &[u64; W]| x.iter().enumerate().all(|(i, &w)| w == u64::from(i == 0));
        let is_even = |x: &[u64; W]| x.first().is_some_and(|w| w & 1 == 0);
        if is_zero(a) || ge(a, n) {
            return None;
        }
        // x1·a = u and x2·a = v (mod n) throughout.
        let (mut u, mut v) = (*a, *n);
        let mut x1 = [0u64; W];
        if let Some(w) = x1.first_mut() {
            *w = 1;
        }
        let mut x2 = [0u64; W];
        while !is_one(&u) && !is_one(&v) {
            if is_zero(&u) || is_zero(&v) {
                return None;
            }
            while is_even(&u) {
                half(&mut u, false);
                half_mod(&mut x1, n);
            }
            while is_even(&v) {
                half(&mut v, false);
                half_mod(&mut x2, n);
            }
            if ge(&u, &v) {
                sub(&mut u, &v);
                sub_mod(&mut x1, &x2, n);
            } else {
                sub(&mut v, &u);
                sub_mod(&mut x2, &x1, n);
            }
        }
        Some(if is_one(&u) { x1 } else { x2 })
    }

    /// Big-endian bytes (W·8 of them) to words, and back.
    pub fn from_be<const W: usize>(be: &[u8]) -> [u64; W] {
        let mut out = [0u64; W];
        for (word, bytes) in out.iter_mut().zip(be.rchunks(8)) {
            *word = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        }
        out
    }

    pub fn to_be<const W: usize>(a: &[u64; W], out: &mut [u8]) {
        for (word, bytes) in a.iter().zip(out.rchunks_mut(8)) {
            for (i, b) in bytes.iter_mut().rev().enumerate() {
                *b = (word >> (8 * i)) as u8;
            }
        }
    }
}

macro_rules! ecdsa_verifier {
    ($module:ident, $curve:ident, $curve_type:ident, $bits:expr, $hash:ty, $doc:literal) => {
        #[doc = $doc]
        pub mod $module {
            use std::sync::OnceLock;

            use sha2::Digest as _;
            use $curve::elliptic_curve::bigint::ArrayEncoding as _;
            use $curve::elliptic_curve::ops::Reduce;
            use $curve::elliptic_curve::sec1::ToEncodedPoint as _;
            use $curve::elliptic_curve::{Curve as _, PrimeField as _};
            use $curve::{$curve_type, AffinePoint, FieldBytes, FieldElement, Scalar};

            use super::{wnaf, words};

            /// Scalars are cut into chunks of this many bits: the doublings per verification.
            const CHUNK_BITS: usize = 16;
            const CHUNKS: usize = $bits / CHUNK_BITS;
            /// wNAF digits per chunk (one more than its bits: the last carry).
            const DIGITS: usize = CHUNK_BITS + 1;
            /// wNAF widths: 8 odd multiples per chunk of a key, 32 of the generator.
            const Q_WIDTH: u32 = 5;
            const Q_ODD: usize = 1 << (Q_WIDTH - 2);
            const G_WIDTH: u32 = 7;
            const G_ODD: usize = 1 << (G_WIDTH - 2);

            /// A point other than the identity, in affine coordinates.
            #[derive(Clone, Copy)]
            struct Affine {
                x: FieldElement,
                y: FieldElement,
            }

            /// Jacobian coordinates: (X/Z², Y/Z³); Z = 0 is the identity.
            #[derive(Clone, Copy)]
            struct Jacobian {
                x: FieldElement,
                y: FieldElement,
                z: FieldElement,
            }

            impl Affine {
                fn from_encoded(x: Option<&FieldBytes>, y: Option<&FieldBytes>) -> Option<Affine> {
                    let x = Option::from(FieldElement::from_bytes(x?))?;
                    let y = Option::from(FieldElement::from_bytes(y?))?;
                    Some(Affine { x, y })
                }

                fn generator() -> Option<Affine> {
                    let g = AffinePoint::GENERATOR.to_encoded_point(false);
                    Affine::from_encoded(g.x(), g.y())
                }

                fn neg(&self) -> Affine {
                    Affine { x: self.x, y: -self.y }
                }

                fn jacobian(&self) -> Jacobian {
                    Jacobian { x: self.x, y: self.y, z: FieldElement::ONE }
                }
            }

            impl Jacobian {
                const IDENTITY: Jacobian =
                    Jacobian { x: FieldElement::ZERO, y: FieldElement::ONE, z: FieldElement::ZERO };

                fn is_identity(&self) -> bool {
                    bool::from(self.z.is_zero())
                }

                /// 2P (dbl-2001-b, a = -3). The identity doubles to itself (Z stays 0), and so
                /// does a point with Y = 0 (there is none on these prime-order curves).
                fn double(&self) -> Jacobian {
                    let delta = self.z.square();
                    let gamma = self.y.square();
                    let beta = self.x * gamma;
                    let alpha = (self.x - delta) * (self.x + delta);
                    let alpha = alpha.double() + alpha;
                    let beta4 = beta.double().double();
                    let x = alpha.square() - beta4.double();
                    let z = (self.y + self.z).square() - gamma - delta;
                    let gamma2 = gamma.square();
                    let y = alpha * (beta4 - x) - gamma2.double().double().double();
                    Jacobian { x, y, z }
                }

                /// P + A, A affine (madd-2007-bl), with the cases the formula does not cover:
                /// P the identity, P = A (a doubling) and P = -A (the identity).
                fn add_affine(&self, a: &Affine) -> Jacobian {
                    if self.is_identity() {
                        return a.jacobian();
                    }
                    let z1z1 = self.z.square();
                    let u2 = a.x * z1z1;
                    let s2 = a.y * self.z * z1z1;
                    let h = u2 - self.x;
                    let r = (s2 - self.y).double();
                    if bool::from(h.is_zero()) {
                        return if bool::from(r.is_zero()) { self.double() } else { Jacobian::IDENTITY };
                    }
                    let hh = h.square();
                    let i = hh.double().double();
                    let j = h * i;
                    let v = self.x * i;
                    let x = r.square() - j - v.double();
                    let y = r * (v - x) - (self.y * j).double();
                    let z = (self.z + h).square() - z1z1 - hh;
                    Jacobian { x, y, z }
                }
            }

            /// The points made affine with one field inversion (Montgomery's trick); `None` if
            /// one is the identity.
            fn batch_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
                let mut prefix = Vec::with_capacity(points.len());
                let mut product = FieldElement::ONE;
                for p in points {
                    if p.is_identity() {
                        return None;
                    }
                    product *= p.z;
                    prefix.push(product);
                }
                let mut inverse: FieldElement = Option::from(product.invert())?;
                let mut out = vec![Affine { x: FieldElement::ZERO, y: FieldElement::ZERO }; points.len()];
                for i in (0..points.len()).rev() {
                    let (Some(p), Some(slot)) = (points.get(i), out.get_mut(i)) else { return None };
                    // 1/Z_i = (Z_0..Z_i)^-1 · (Z_0..Z_(i-1)).
                    let z_inv = match i.checked_sub(1).and_then(|k| prefix.get(k)) {
                        Some(before) => inverse * before,
                        None => inverse,
                    };
                    inverse *= p.z;
                    let z_inv2 = z_inv.square();
                    *slot = Affine { x: p.x * z_inv2, y: p.y * z_inv2 * z_inv };
                }
                Some(out)
            }

            /// For each chunk j, the odd multiples P_j, 3·P_j, 5·P_j.. (`odd` of them) of
            /// P_j = 2^(16j)·P, affine, chunk after chunk. Three field inversions in all.
            fn table(p: &Affine, odd: usize) -> Option<Vec<Affine>> {
                let mut bases = Vec::with_capacity(CHUNKS);
                let mut base = p.jacobian();
                for _ in 0..CHUNKS {
                    bases.push(base);
                    for _ in 0..CHUNK_BITS {
                        base = base.double();
                    }
                }
                let bases = batch_affine(&bases)?;
                let twice = batch_affine(&bases.iter().map(|b| b.jacobian().double()).collect::<Vec<_>>())?;
                let mut multiples = Vec::with_capacity(CHUNKS * odd);
                for (base, twice) in bases.iter().zip(&twice) {
                    let mut multiple = base.jacobian();
                    for _ in 0..odd {
                        multiples.push(multiple);
                        multiple = multiple.add_affine(twice);
                    }
                }
                batch_affine(&multiples)
            }

            /// What every verification in this VM shares: the generator's table, n as a field
            /// element and p - n (big-endian), made on the first verification.
            struct Shared {
                generator: Vec<Affine>,
                n: FieldElement,
                n_words: [u64; WORDS],
                p_minus_n: FieldBytes,
            }

            /// 64-bit words in a scalar.
            const WORDS: usize = $bits / 64;

            static SHARED: OnceLock<Option<Shared>> = OnceLock::new();

            fn shared() -> Option<&'static Shared> {
                SHARED
                    .get_or_init(|| {
                        let generator = table(&Affine::generator()?, G_ODD)?;
                        let order = $curve_type::ORDER.to_be_byte_array();
                        let n: FieldElement = Option::from(FieldElement::from_bytes(&order))?;
                        let n_words = words::from_be(&order);
                        Some(Shared { generator, n, n_words, p_minus_n: (-n).to_bytes() })
                    })
                    .as_ref()
            }

            /// A public key, and its table once it has verified a signature.
            pub struct Key {
                point: Option<Affine>,
                table: OnceLock<Option<Vec<Affine>>>,
            }

            /// A scalar's 16-bit chunks, least significant first.
            fn chunks(s: &Scalar) -> [u64; CHUNKS] {
                let be = s.to_repr();
                let mut out = [0u64; CHUNKS];
                for (word, bytes) in out.iter_mut().zip(be.rchunks(CHUNK_BITS / 8)) {
                    *word = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                }
                out
            }

            impl Key {
                pub fn new(key: $curve::ecdsa::VerifyingKey) -> Key {
                    let encoded = key.to_encoded_point(false);
                    Key { point: Affine::from_encoded(encoded.x(), encoded.y()), table: OnceLock::new() }
                }

                pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
                    let Ok(sig) = $curve::ecdsa::Signature::from_slice(signature) else { return false };
                    let Some(shared) = shared() else { return false };
                    let Some(q) = self.table.get_or_init(|| table(self.point.as_ref()?, Q_ODD)).as_ref() else {
                        return false;
                    };
                    let (r, s) = sig.split_scalars();
                    // The hash is as long as the curve's field: bits2field is the identity.
                    let z = <Scalar as Reduce<_>>::reduce_bytes(&<$hash>::digest(input));
                    // s^-1 by a binary GCD on 64-bit words: ≈ 7 µs less per verification in V8
                    // than the crate's `invert_vartime` (the same algorithm on 32-bit limbs).
                    let Some(s_inv) = words::invert(&words::from_be::<WORDS>(&s.to_repr()), &shared.n_words) else {
                        return false;
                    };
                    let mut s_inv_repr = FieldBytes::default();
                    words::to_be(&s_inv, &mut s_inv_repr);
                    let Some(s_inv) = Option::<Scalar>::from(Scalar::from_repr(s_inv_repr)) else { return false };
                    let u1 = chunks(&(z * s_inv)).map(|c| wnaf::<DIGITS>(c, G_WIDTH));
                    let u2 = chunks(&(*r * s_inv)).map(|c| wnaf::<DIGITS>(c, Q_WIDTH));
                    let terms = u1.iter().zip(shared.generator.chunks(G_ODD)).chain(u2.iter().zip(q.chunks(Q_ODD)));
                    let terms: Vec<(&[i8; DIGITS], &[Affine])> = terms.collect();
                    let mut acc = Jacobian::IDENTITY;
                    for i in (0..DIGITS).rev() {
                        if !acc.is_identity() {
                            acc = acc.double();
                        }
                        for (digits, multiples) in &terms {
                            let d = digits.get(i).copied().unwrap_or(0);
                            if d == 0 {
                                continue;
                            }
                            let Some(p) = multiples.get(usize::from(d.unsigned_abs() / 2)) else { continue };
                            acc = if d > 0 { acc.add_affine(p) } else { acc.add_affine(&p.neg()) };
                        }
                    }
                    if acc.is_identity() {
                        return false;
                    }
                    // x(R) mod n == r, with x(R) = X/Z² in [0, p) and p < 2n: x(R) is r, or
                    // r + n when that is below p.
                    let r_repr = r.to_repr();
                    let Some(r_fe) = Option::<FieldElement>::from(FieldElement::from_bytes(&r_repr)) else {
                        return false;
                    };
                    let zz = acc.z.square();
                    acc.x == r_fe * zz
                        || (r_repr.as_slice() < shared.p_minus_n.as_slice() && acc.x == (r_fe + shared.n) * zz)
                }
            }

            /// The point arithmetic against the crate's own (complete formulas), including the
            /// cases the Jacobian addition treats apart. (The verification as a whole is tested
            /// in `jwt_key`: the crate's verdicts and Wycheproof.)
            #[cfg(test)]
            mod tests {
                use super::*;
                use $curve::ProjectivePoint;

                fn theirs(k: u64) -> Affine {
                    let p = (ProjectivePoint::GENERATOR * Scalar::from(k)).to_affine().to_encoded_point(false);
                    Affine::from_encoded(p.x(), p.y()).unwrap()
                }

                fn ours(p: &Jacobian) -> Option<Affine> {
                    batch_affine(&[*p]).map(|v| v[0])
                }

                fn same(a: &Affine, b: &Affine) -> bool {
                    a.x == b.x && a.y == b.y
                }

                #[test]
                fn jacobian_arithmetic_matches_the_crate() {
                    let g = Affine::generator().unwrap();
                    let g2 = g.jacobian().double();
                    assert!(same(&ours(&g2).unwrap(), &theirs(2)));
                    // A general addition, with Z != 1.
                    assert!(same(&ours(&g2.add_affine(&g)).unwrap(), &theirs(3)));
                    assert!(same(&ours(&g2.double().add_affine(&theirs(7))).unwrap(), &theirs(11)));
                    // P + P: the doubling case; P + (-P): the identity; identity + A = A.
                    let g2_affine = ours(&g2).unwrap();
                    assert!(same(&ours(&g2.add_affine(&g2_affine)).unwrap(), &theirs(4)));
                    assert!(g2.add_affine(&g2_affine.neg()).is_identity());
                    assert!(same(&ours(&Jacobian::IDENTITY.add_affine(&g)).unwrap(), &g));
                    assert!(Jacobian::IDENTITY.double().is_identity());
                    assert!(ours(&Jacobian::IDENTITY).is_none());
                }

                #[test]
                fn scalar_inversion_matches_the_crate() {
                    use $curve::elliptic_curve::ops::Invert as _;
                    let n_words = words::from_be::<WORDS>(&$curve_type::ORDER.to_be_byte_array());
                    let hashed =
                        (0u32..300).map(|i| <Scalar as Reduce<_>>::reduce_bytes(&<$hash>::digest(i.to_be_bytes())));
                    for s in
                        [Scalar::ONE, -Scalar::ONE, Scalar::from(2u64), -Scalar::from(2u64)].into_iter().chain(hashed)
                    {
                        let inv = words::invert(&words::from_be::<WORDS>(&s.to_repr()), &n_words).unwrap();
                        let mut repr = FieldBytes::default();
                        words::to_be(&inv, &mut repr);
                        let ours = Scalar::from_repr(repr).unwrap();
                        assert_eq!(ours, s.invert_vartime().unwrap());
                        assert_eq!(ours * s, Scalar::ONE);
                    }
                    assert!(words::invert(&[0u64; WORDS], &n_words).is_none());
                    assert!(words::invert(&n_words, &n_words).is_none());
                }

                #[test]
                fn tables_hold_the_odd_multiples_of_each_chunk() {
                    let g = Affine::generator().unwrap();
                    let table = table(&g, Q_ODD).unwrap();
                    assert_eq!(table.len(), CHUNKS * Q_ODD);
                    for (j, chunk) in table.chunks(Q_ODD).enumerate() {
                        let base =
                            ProjectivePoint::GENERATOR * Scalar::from(2u64).pow_vartime(&[(CHUNK_BITS * j) as u64]);
                        for (i, multiple) in chunk.iter().enumerate() {
                            let expected = (base * Scalar::from(2 * i as u64 + 1)).to_affine().to_encoded_point(false);
                            assert!(
                                same(multiple, &Affine::from_encoded(expected.x(), expected.y()).unwrap()),
                                "{j} {i}"
                            );
                        }
                    }
                }
            }
        }
    };
}

ecdsa_verifier!(es256, p256, NistP256, 256, sha2::Sha256, "ES256: ECDSA on P-256 with SHA-256.");
ecdsa_verifier!(es384, p384, NistP384, 384, sha2::Sha384, "ES384: ECDSA on P-384 with SHA-384.");
