//! ECDSA verification (ES256, ES384).
//!
//! The `p256`/`p384` crates parse the key and the signature and do the field and point
//! arithmetic; the double-scalar multiplication u1·G + u2·Q is ours. The crates' own `verify`
//! (0.13) multiplies G and Q separately, each with 256 (384) doublings and constant-time table
//! scans: ≈ 1 ms per ES256 verification in Envoy's V8. Here each scalar is split into 64-bit
//! chunks against precomputed multiples 2^(64j)·P (for G once per VM, for Q once per key, on its
//! first verification), and both scalars share one pass of 64 doublings with signed-window
//! (wNAF) additions: ≈ 4× less. The steps otherwise are those of
//! `ecdsa::hazmat::verify_prehashed` (z = H(input) reduced mod n, u1 = z/s, u2 = r/s, accept when
//! the x coordinate of u1·G + u2·Q reduced mod n is r), so the same signatures verify (tested
//! against the crates' own verification in `jwt_key`'s tests). Public data only: nothing here is
//! constant-time.

/// Signed-window (wNAF, width `w`) digits of a 64-bit chunk, least significant first: each
/// non-zero digit is odd and below 2^(w-1) in magnitude, and any w consecutive digits hold at
/// most one non-zero one.
pub(crate) fn wnaf(chunk: u64, w: u32) -> [i8; 65] {
    let mut out = [0i8; 65];
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

macro_rules! ecdsa_verifier {
    ($module:ident, $curve:ident, $words:expr, $hash:ty, $doc:literal) => {
        #[doc = $doc]
        pub mod $module {
            use std::sync::OnceLock;

            use sha2::Digest as _;
            use $curve::elliptic_curve::group::Group as _;
            use $curve::elliptic_curve::ops::{Invert as _, Reduce};
            use $curve::elliptic_curve::point::AffineCoordinates as _;
            use $curve::elliptic_curve::PrimeField as _;
            use $curve::{ProjectivePoint, Scalar};

            use super::wnaf;

            /// wNAF widths: 8 odd multiples per chunk of a key, 32 of the generator.
            const Q_WIDTH: u32 = 5;
            const Q_ODD: usize = 1 << (Q_WIDTH - 2);
            const G_WIDTH: u32 = 7;
            const G_ODD: usize = 1 << (G_WIDTH - 2);

            /// For each 64-bit chunk j, the odd multiples P_j, 3·P_j, 5·P_j.. of P_j = 2^(64j)·P.
            /// Projective: making them affine would cost a field inversion each (the crate has
            /// no batch inversion for its field here), and a projective addition costs about
            /// what a mixed one does.
            fn table(p: ProjectivePoint, odd: usize) -> Vec<ProjectivePoint> {
                let mut multiples = Vec::with_capacity($words * odd);
                let mut base = p;
                for chunk in 0..$words {
                    let twice = base.double();
                    let mut multiple = base;
                    for _ in 0..odd {
                        multiples.push(multiple);
                        multiple += twice;
                    }
                    if chunk + 1 < $words {
                        for _ in 0..64 {
                            base = base.double();
                        }
                    }
                }
                multiples
            }

            /// The generator's table, made on the first verification in this VM.
            static GENERATOR: OnceLock<Vec<ProjectivePoint>> = OnceLock::new();

            /// A public key, and its table once it has verified a signature.
            pub struct Key {
                key: $curve::ecdsa::VerifyingKey,
                table: OnceLock<Vec<ProjectivePoint>>,
            }

            /// A scalar's 64-bit chunks, least significant first.
            fn chunks(s: &Scalar) -> [u64; $words] {
                let be = s.to_repr();
                let mut out = [0u64; $words];
                for (word, bytes) in out.iter_mut().zip(be.rchunks(8)) {
                    *word = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                }
                out
            }

            impl Key {
                pub fn new(key: $curve::ecdsa::VerifyingKey) -> Key {
                    Key { key, table: OnceLock::new() }
                }

                pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
                    let Ok(sig) = $curve::ecdsa::Signature::from_slice(signature) else { return false };
                    let (r, s) = sig.split_scalars();
                    // The hash is as long as the curve's field: bits2field is the identity.
                    let z = <Scalar as Reduce<_>>::reduce_bytes(&<$hash>::digest(input));
                    let s_inv = *s.invert_vartime();
                    let u1 = chunks(&(z * s_inv)).map(|c| wnaf(c, G_WIDTH));
                    let u2 = chunks(&(*r * s_inv)).map(|c| wnaf(c, Q_WIDTH));
                    let q = self.table.get_or_init(|| table(ProjectivePoint::from(*self.key.as_affine()), Q_ODD));
                    let g = GENERATOR.get_or_init(|| table(ProjectivePoint::GENERATOR, G_ODD));
                    let terms: Vec<(&[i8; 65], &[ProjectivePoint])> =
                        u1.iter().zip(g.chunks(G_ODD)).chain(u2.iter().zip(q.chunks(Q_ODD))).collect();
                    let mut acc = ProjectivePoint::IDENTITY;
                    let mut started = false;
                    for i in (0..65).rev() {
                        if started {
                            acc = acc.double();
                        }
                        for (digits, multiples) in &terms {
                            let d = digits.get(i).copied().unwrap_or(0);
                            if d == 0 {
                                continue;
                            }
                            let Some(p) = multiples.get(usize::from(d.unsigned_abs() / 2)) else { continue };
                            acc = if d > 0 { acc + p } else { acc + (-*p) };
                            started = true;
                        }
                    }
                    *r == <Scalar as Reduce<_>>::reduce_bytes(&acc.to_affine().x())
                }
            }
        }
    };
}

ecdsa_verifier!(es256, p256, 4, sha2::Sha256, "ES256: ECDSA on P-256 with SHA-256.");
ecdsa_verifier!(es384, p384, 6, sha2::Sha384, "ES384: ECDSA on P-384 with SHA-384.");
