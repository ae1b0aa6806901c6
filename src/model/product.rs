//! The f32 products of the dense projections (`x·Wᵀ` forward, `g·W` backward) on the gemm crate
//! (candle's own matmul kernel), split by columns among the threads: each thread runs one
//! single-threaded gemm over its own columns of the output.
//!
//! Why not the crate's own threading (`Parallelism::Rayon`): on a 2-core AVX-512 Xeon the split
//! ran the models' projections 1.03-1.45× faster (`cargo bench --bench kernels`, each way three
//! times alternately; SmolLM2 down 512 × 1536 × 576: 138-150 → 197-212 GFLOP/s). Each thread
//! packs only its own columns of B and never waits on the other.

/// The right-hand operand: element (p, j) at `data[p * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Rhs<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Stride between rows (p).
    pub rs: usize,
    /// Stride between columns (j).
    pub cs: usize,
}

/// Columns per unit of the split: whole AVX-512 vectors.
const COLS: usize = 16;

/// A raw output pointer that the threads share; each writes only its own columns.
pub(super) struct Out(pub(super) *mut f32);
// SAFETY: the threads write disjoint column ranges (see `product`), never the same element.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer to element `j` (column `j` of row 0).
    pub(super) fn at(&self, j: usize) -> *mut f32 {
        self.0.wrapping_add(j)
    }
}

/// Runs `run(t)` for t in 0..threads, t = 0 on the calling thread and the others on rayon's
/// pool; returns when all have.
pub(super) fn on_threads(threads: usize, run: impl Fn(usize) + Sync) {
    if threads <= 1 {
        return run(0);
    }
    rayon::scope(|s| {
        for t in 1..threads {
            let run = &run;
            s.spawn(move |_| run(t));
        }
        run(0);
    });
}

/// `a·b` for row-major `a` [m, k] and `b` [k, n]: a new row-major [m, n], on up to `threads`
/// threads. Panics if `a` or `b` is too small for the shape.
pub fn product(a: &[f32], m: usize, k: usize, b: Rhs, n: usize, threads: usize) -> Vec<f32> {
    assert!(a.len() >= m * k, "left operand too small");
    assert!(
        k == 0 || n == 0 || (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
        "right operand too small"
    );
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let mut out = Vec::with_capacity(m * n);
    let dst = Out(out.as_mut_ptr());
    let units = n.div_ceil(COLS);
    let threads = threads.clamp(1, units);
    let cols = |t: usize| (units * t / threads * COLS).min(n);
    let run = |t: usize| {
        let (j0, j1) = (cols(t), cols(t + 1));
        // SAFETY: rows of `a` and columns j0..j1 of `b` lie in their slices (asserted above);
        // this thread writes columns j0..j1 of every row of `out`'s capacity, no other thread
        // does, and nothing reads them (`read_dst` false).
        unsafe {
            gemm::gemm(
                m,
                j1 - j0,
                k,
                dst.at(j0),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.data.as_ptr().add(j0 * b.cs),
                b.cs as isize,
                b.rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    on_threads(threads, run);
    // SAFETY: the threads together wrote all m·n elements (the column ranges cover 0..n).
    unsafe { out.set_len(m * n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attention::tests::rand_vec;

    #[test]
    fn split_products_match_the_definition_for_both_layouts_and_any_thread_count() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 33, 50),
            (40, 100, 17),
            (3, 0, 5),
            (0, 4, 4),
            (65, 70, 129),
        ] {
            let (a, bv) = (rand_vec(m * k, 1), rand_vec(k * n, 2));
            // b stored row-major [k, n], and as the transpose of a row-major [n, k].
            let bt: Vec<f32> = (0..n * k).map(|i| bv[(i % k) * n + i / k]).collect();
            let want: Vec<f64> = (0..m * n)
                .map(|i| (0..k).map(|p| a[i / n * k + p] as f64 * bv[p * n + i % n] as f64).sum())
                .collect();
            for b in [
                Rhs {
                    data: &bv,
                    rs: n,
                    cs: 1,
                },
                Rhs {
                    data: &bt,
                    rs: 1,
                    cs: k,
                },
            ] {
                for threads in [1, 2, 3, 64] {
                    let got = product(&a, m, k, b, n, threads);
                    assert_eq!(got.len(), m * n);
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
