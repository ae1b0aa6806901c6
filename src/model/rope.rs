//! Rotary position embeddings on token-major [tokens, heads, head_dim] data, with one
//! explicit position per token. Used for new keys/queries and to re-rotate stored keys.

/// cos/sin of `position · θ_i` for a list of tokens, [tokens, head_dim/2] each.
/// Angles are computed in f64 so that rotating by s then by j equals rotating by s + j
/// to f32 rounding.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    interleaved: bool,
}

impl RopeTable {
    /// The table for the given per-token positions (may be negative: rotation backwards).
    pub fn new(inv_freqs: &[f32], positions: &[i64], interleaved: bool) -> Self {
        let half = inv_freqs.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in inv_freqs {
                let a = p as f64 * f as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self {
            cos,
            sin,
            half,
            interleaved,
        }
    }

    /// Number of tokens the table covers.
    pub fn len(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// True when the table covers no token.
    pub fn is_empty(&self) -> bool {
        self.cos.is_empty()
    }

    /// The inverse rotation (same angles, negated): the transpose of this one, and so the
    /// backward pass of [`RopeTable::apply`].
    pub fn inverse(&self) -> Self {
        Self {
            sin: self.sin.iter().map(|s| -s).collect(),
            ..self.clone()
        }
    }

    /// Rotates `x` ([tokens, heads, 2·half] contiguous) in place; token t uses row t of the
    /// table, or row 0 for every token when the table has a single row (a constant offset).
    pub fn apply(&self, x: &mut [f32], n_heads: usize) {
        let d = 2 * self.half;
        let per_tok = n_heads * d;
        if per_tok == 0 {
            return;
        }
        let single = self.len() == 1;
        for (t, tok) in x.chunks_mut(per_tok).enumerate() {
            let r = if single { 0 } else { t };
            let cos = &self.cos[r * self.half..(r + 1) * self.half];
            let sin = &self.sin[r * self.half..(r + 1) * self.half];
            for head in tok.chunks_mut(d) {
                if self.interleaved {
                    for i in 0..self.half {
                        let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                        head[2 * i] = x0 * cos[i] - x1 * sin[i];
                        head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
                    }
                } else {
                    let (a, b) = head.split_at_mut(self.half);
                    for i in 0..self.half {
                        let (x0, x1) = (a[i], b[i]);
                        a[i] = x0 * cos[i] - x1 * sin[i];
                        b[i] = x0 * sin[i] + x1 * cos[i];
                    }
                }
            }
        }
    }
}
