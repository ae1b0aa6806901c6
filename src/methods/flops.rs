//! Analytic FLOP counts (DESIGN §3): a token's forward is 2·params plus its attention terms.

use crate::model::Config;

/// FLOPs of a plain forward of `n` tokens at positions `start..start+n`, each attending to
/// every earlier position: 2·block_params per token plus 4·(p+1)·head_dim·n_heads per layer
/// (scores and weighted values). The output head is not counted (document rows need no logits).
pub fn forward_flops(cfg: &Config, start: usize, n: usize) -> f64 {
    let dense = 2.0 * cfg.block_params() as f64 * n as f64;
    // Σ_{p=start}^{start+n-1} (p+1)
    let keys = (n as f64) * (start as f64) + (n as f64) * (n as f64 + 1.0) / 2.0;
    let attn = 4.0 * keys * (cfg.head_dim * cfg.n_heads * cfg.n_layers) as f64;
    dense + attn
}

/// FLOPs of recomputing one token at key index `row` through one layer: its share of the
/// dense weights plus attention over keys `0..=row`.
pub fn layer_flops(cfg: &Config, row: usize) -> f64 {
    2.0 * cfg.block_params() as f64 / cfg.n_layers as f64 + 4.0 * (row + 1) as f64 * (cfg.head_dim * cfg.n_heads) as f64
}
