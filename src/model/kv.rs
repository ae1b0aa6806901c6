//! A preallocated per-layer KV buffer: keys stored already rotated, token-major
//! [tokens, kv_heads, head_dim]. Appending never reallocates within capacity.

use anyhow::{Result, bail};

/// Keys and values of one layer for `len` tokens, with room for `capacity`.
#[derive(Clone)]
pub struct LayerKv {
    /// Keys [len, kv_heads, head_dim], token-major, allocated for `capacity` tokens.
    pub k: Vec<f32>,
    /// Values, laid out like `k`.
    pub v: Vec<f32>,
}

/// The KV cache of every layer. Guarantees: all layers hold the same `len` tokens; rows are
/// changed only through its verbs (append, overwrite rows, truncate).
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
    capacity: usize,
    row: usize,
}

impl KvCache {
    /// An empty cache with room for `capacity` tokens (`row` = kv_heads·head_dim floats per token).
    pub fn new(n_layers: usize, row: usize, capacity: usize) -> Self {
        let layers = (0..n_layers)
            .map(|_| LayerKv {
                k: Vec::with_capacity(capacity * row),
                v: Vec::with_capacity(capacity * row),
            })
            .collect();
        Self {
            layers,
            len: 0,
            capacity,
            row,
        }
    }

    /// Layer `l`'s keys and values, token-major (read only).
    pub fn layer(&self, l: usize) -> &LayerKv {
        &self.layers[l]
    }

    /// The layers' keys and values, consuming the cache (what a packet keeps).
    pub fn into_layers(self) -> Vec<LayerKv> {
        self.layers
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no token is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum tokens this cache may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Floats per token per layer in K (and in V).
    pub fn row(&self) -> usize {
        self.row
    }

    /// Errors unless `n` more tokens fit.
    pub fn reserve(&self, n: usize) -> Result<()> {
        if self.len + n > self.capacity {
            bail!(
                "context too long: {} + {} tokens exceed the cache capacity of {}",
                self.len,
                n,
                self.capacity
            );
        }
        Ok(())
    }

    /// Appends K,V rows to layer `l`. Every layer must be given the same count before
    /// [`KvCache::commit`] is called.
    pub fn push_layer(&mut self, l: usize, k: &[f32], v: &[f32]) {
        let lay = &mut self.layers[l];
        lay.k.extend_from_slice(k);
        lay.v.extend_from_slice(v);
    }

    /// Appends `n` tokens to every layer from per-layer K,V rows (`k[l]`, `v[l]`: n rows each),
    /// with the keys rotated by `rot` when given (a one-position table: the offset of a packet
    /// placed here), in place in the cache, and commits them. Layers are filled in parallel:
    /// the copy is memory-bound, and one core does not saturate memory bandwidth. An error
    /// (and the cache unchanged) when the layer count or a row length does not fit.
    pub fn append_rows(
        &mut self,
        n: usize,
        k: &[Vec<f32>],
        v: &[Vec<f32>],
        rot: Option<&super::rope::RopeTable>,
        kv_heads: usize,
    ) -> Result<()> {
        use rayon::prelude::*;
        self.reserve(n)?;
        let want = n * self.row;
        if k.len() != self.layers.len() || v.len() != self.layers.len() || k.iter().chain(v).any(|x| x.len() != want) {
            bail!(
                "K,V rows of the wrong shape for this cache ({} layers of {want} floats expected)",
                self.layers.len()
            );
        }
        self.layers
            .par_iter_mut()
            .zip(k.par_iter().zip(v))
            .for_each(|(lay, (k, v))| {
                let at = lay.k.len();
                lay.k.extend_from_slice(k);
                if let Some(rot) = rot {
                    rot.apply(&mut lay.k[at..], kv_heads);
                }
                lay.v.extend_from_slice(v);
            });
        self.commit(n);
        Ok(())
    }

    /// Overwrites the K,V of the given token rows of layer `l` (`k`, `v`: one row each, in order).
    pub fn overwrite_rows(&mut self, l: usize, rows: &[usize], k: &[f32], v: &[f32]) {
        let r = self.row;
        let lay = &mut self.layers[l];
        for (i, &t) in rows.iter().enumerate() {
            lay.k[t * r..(t + 1) * r].copy_from_slice(&k[i * r..(i + 1) * r]);
            lay.v[t * r..(t + 1) * r].copy_from_slice(&v[i * r..(i + 1) * r]);
        }
    }

    /// Records that `n` tokens were pushed to every layer.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.layers.iter().all(|l| l.k.len() == self.len * self.row));
    }

    /// Drops every token from index `len` on.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            for l in &mut self.layers {
                l.k.truncate(len * self.row);
                l.v.truncate(len * self.row);
            }
            self.len = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_rows_fills_every_layer_and_refuses_a_wrong_shape_unchanged() {
        let mut c = KvCache::new(2, 4, 8);
        let rows = |n: usize, x: f32| vec![vec![x; n * 4], vec![x + 1.0; n * 4]];
        c.append_rows(2, &rows(2, 1.0), &rows(2, 5.0), None, 1).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.layer(1).k, vec![2.0; 8]);
        assert_eq!(c.layer(0).v, vec![5.0; 8]);
        // A packet row count, layer count or capacity that does not fit leaves the cache as it was.
        assert!(c.append_rows(3, &rows(2, 0.0), &rows(2, 0.0), None, 1).is_err());
        assert!(
            c.append_rows(2, &rows(2, 0.0)[..1], &rows(2, 0.0)[..1], None, 1)
                .is_err()
        );
        assert!(c.append_rows(7, &rows(7, 0.0), &rows(7, 0.0), None, 1).is_err());
        assert_eq!((c.len(), c.layer(0).k.len()), (2, 8));
    }
}
