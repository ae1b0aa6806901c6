//! `cargo bench --bench kernels`: the prefill's two kernels in GFLOP/s against this machine's
//! FMA peak measured here (the number issue 17 asks for: kernel speed against cores × FMA units
//! × lanes × 2 × clock):
//! - the f32 matrix products of a 512-token prefill (SmolLM2-135M and Qwen2.5-0.5B linear
//!   shapes, `x · Wᵀ` through the model's own projection, `Linear::forward`: the gemm crate's
//!   kernel called directly into an unfilled output), and the same products in bf16
//!   (`PackedBf16`, AVX512-BF16 dot products with f32 sums; the `bf16-gguf-decode` weights'
//!   prefill) where the CPU has them, against the same f32 FMA peak;
//! - causal self-attention of a whole prompt (`attention_forward`, the engine's tiled kernel)
//!   at 512 / 2048 / 4096 tokens, counting the useful FLOPs only (4 · head_dim per visible
//!   (query, key, head)).
//!
//! Threads: rayon's (RAYON_NUM_THREADS). Best of 4 runs of ≥ 0.25 s each, the machine being a
//! shared VM. `peers/kernels_torch.py` prints the same shapes for PyTorch (MKL, and its
//! `scaled_dot_product_attention`) for comparison.

use candle_core::{Device, Tensor};
use kvpacket::model::AttnMask;
use kvpacket::model::attention::{AttnInputs, AttnShape, attention_forward};
use kvpacket::model::product_bf16::PackedBf16;
use kvpacket::model::weights::Linear;
use std::time::Instant;

/// (model, what, tokens, in, out) of each product.
const SHAPES: [(&str, &str, usize, usize, usize); 6] = [
    ("SmolLM2", "qkv", 512, 576, 960),
    ("SmolLM2", "gate|up", 512, 576, 3072),
    ("SmolLM2", "down", 512, 1536, 576),
    ("Qwen2.5", "qkv", 512, 896, 1152),
    ("Qwen2.5", "gate|up", 512, 896, 9728),
    ("Qwen2.5", "down", 512, 4864, 896),
];

/// (model, heads, kv heads, head size) of each attention shape.
const ATTENTION: [(&str, usize, usize, usize); 2] = [("SmolLM2", 9, 3, 64), ("Qwen2.5", 14, 2, 64)];

/// Prompt lengths of the attention table.
const LENGTHS: [usize; 3] = [512, 2048, 4096];

/// Best GFLOP/s of `f` doing `flops` per call.
fn best_gflops(flops: f64, mut f: impl FnMut()) -> f64 {
    f();
    (0..4)
        .map(|_| {
            let t = Instant::now();
            let mut calls = 0;
            while t.elapsed().as_secs_f64() < 0.25 {
                f();
                calls += 1;
            }
            flops * calls as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Peak FMA throughput of one core: 12 independent 8-lane FMA chains (enough to cover the
/// latency × throughput of two FMA units), hand-written because no crate measures it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for x in &mut acc {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0f32; 8];
    let s = acc.iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

/// The same chains 16 lanes wide, for machines with AVX-512 (the gemm crate's micro-kernels
/// run at this width there).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains_512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); 12];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for x in &mut acc {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x)))
}

/// The widest FMA this CPU has, as `(name, FLOPs of one chain step)`, None without AVX2 + FMA.
fn fma_width() -> Option<(&'static str, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return Some(("AVX-512", 32));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Some(("AVX2", 16));
        }
    }
    None
}

/// Peak GFLOP/s of `threads` cores running the widest FMA chains at once.
fn fma_peak(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if let Some((_, flops)) = fma_width() {
        let iters = 50_000_000;
        let t = Instant::now();
        let handles: Vec<_> = (0..threads)
            // SAFETY: `fma_width` detected the features each variant needs.
            .map(|_| {
                std::thread::spawn(move || unsafe {
                    if flops == 32 {
                        fma_chains_512(iters)
                    } else {
                        fma_chains(iters)
                    }
                })
            })
            .collect();
        let sink: f32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        std::hint::black_box(sink);
        return Some((iters * 12 * flops * threads) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    None
}

/// `g` as a share of `peak` ("–" when the peak is unknown).
fn of_peak(g: f64, peak: f64) -> String {
    if peak > 0.0 {
        format!("{:.0}%", 100.0 * g / peak)
    } else {
        "–".into()
    }
}

/// Random f32 values in [-1, 1) from a fixed LCG (no tensor library needed for plain slices).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn attention_table(peak: f64) {
    println!("\n| model | causal attention | tokens | GFLOP/s | of peak |");
    println!("|---|---|---|---|---|");
    for (model, n_heads, n_kv_heads, head_dim) in ATTENTION {
        for n in LENGTHS {
            let shape = AttnShape {
                n_heads,
                n_kv_heads,
                head_dim,
            };
            let q = noise(n * n_heads * head_dim, 1);
            let (k, v) = (noise(n * n_kv_heads * head_dim, 2), noise(n * n_kv_heads * head_dim, 3));
            let mask = AttnMask::causal(0, n);
            let inputs = AttnInputs {
                q: &q,
                k: &k,
                v: &v,
                mask: &mask,
                shape,
                head_scale: &[],
            };
            let flops = 4.0 * (head_dim * n_heads) as f64 * (n * (n + 1) / 2) as f64;
            let g = best_gflops(flops, || {
                std::hint::black_box(attention_forward(&inputs));
            });
            let heads = format!("{n_heads} heads / {n_kv_heads} kv, d {head_dim}");
            println!("| {model} | {heads} | {n} | {g:.1} | {} |", of_peak(g, peak));
        }
    }
}

fn main() -> candle_core::Result<()> {
    let threads = rayon::current_num_threads();
    let peak = (0..5).filter_map(|_| fma_peak(threads)).fold(0.0, f64::max);
    let width = fma_width().map_or("none", |(w, _)| w);
    println!("threads: {threads}; FMA peak ({width}, measured): {peak:.1} GFLOP/s\n");
    println!("| model | product | tokens × in × out | f32 GFLOP/s | of peak | bf16 GFLOP/s | of f32 peak |");
    println!("|---|---|---|---|---|---|---|");
    for (model, what, m, k, n) in SHAPES {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let wv = noise(n * k, 4);
        let w = Linear::from_dense(Tensor::from_vec(wv.clone(), (n, k), &Device::Cpu)?);
        let flops = 2.0 * (m * k * n) as f64;
        let g = best_gflops(flops, || {
            std::hint::black_box(w.forward(&x).unwrap());
        });
        let bf16 = if PackedBf16::available() {
            let (packed, xv) = (PackedBf16::pack(&wv, n, k), x.flatten_all()?.to_vec1::<f32>()?);
            let g = best_gflops(flops, || {
                std::hint::black_box(packed.product(&xv, m, threads));
            });
            format!("{g:.1} | {}", of_peak(g, peak))
        } else {
            "– | –".into()
        };
        println!(
            "| {model} | {what} | {m} × {k} × {n} | {g:.1} | {} | {bf16} |",
            of_peak(g, peak)
        );
    }
    attention_table(peak);
    Ok(())
}
