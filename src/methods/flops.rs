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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    #[test]
    fn forward_and_layer_flops_match_a_hand_count() {
        let cfg = Config {
            arch: Arch::Llama,
            vocab_size: 100,
            hidden_size: 64,
            intermediate_size: 128,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 16,
            rms_norm_eps: 1e-5,
            rope_theta: 1e4,
            rope_interleaved: false,
            rope_scaling: None,
            max_position_embeddings: 128,
            tie_word_embeddings: true,
        };
        // Per layer: q 64·64 + k,v 2·64·32 + o 64·64 = 12288; MLP 3·64·128 = 24576.
        assert_eq!(cfg.block_params(), 2 * (12288 + 24576));
        // Two tokens at positions 3 and 4 attend to 4 and 5 keys: 9 key visits, each
        // 4·head_dim·n_heads per layer; dense 2·73728 per token.
        let want = 2.0 * 73728.0 * 2.0 + 4.0 * 9.0 * 16.0 * 4.0 * 2.0;
        assert_eq!(forward_flops(&cfg, 3, 2), want);
        // Summed over layers, one token's layer FLOPs equal its forward FLOPs.
        assert_eq!(2.0 * layer_flops(&cfg, 4), forward_flops(&cfg, 4, 1));
    }
}
