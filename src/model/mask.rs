//! Attention masks as one key range per query row, optionally with a second range of earlier
//! keys: no dense n×n tensor is ever built.

use anyhow::{Result, bail};

/// For each query row `i`, the half-open range of key indices `[lo, hi)` it attends to, and
/// optionally a second range `[a, b)` with `b ≤ lo` that it also attends to. Causal, prefix
/// and block-diagonal masks are one range per row; the second range adds branches (several
/// question tails that each see the same documents and only themselves, `Segment::Branch`)
/// and context-only headers (`Segment::Context`, `Segment::Conditioned`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttnMask {
    ranges: Vec<(u32, u32)>,
    /// Per row, the second key range (empty: no row has one).
    extra: Vec<(u32, u32)>,
    /// The keys whose scores some rows multiply by their `row_scale` (see
    /// [`AttnMask::with_key_scale`]).
    scaled_keys: (u32, u32),
    /// Per row, the factor on its scores against `scaled_keys`; 0: the row reads them
    /// unscaled (empty: no row scales).
    row_scale: Vec<f32>,
    /// Per layer and kv head (layer-major), a further factor on the scaled rows' scores
    /// against `scaled_keys` (see [`AttnMask::with_head_key_scale`]; empty: none).
    head_scale: Vec<f32>,
    /// KV heads a layer of `head_scale` has.
    kv_heads: usize,
}

impl AttnMask {
    /// Plain causal attention for `n_new` queries appended after `n_past` cached keys:
    /// query i sees keys `[0, n_past + i + 1)`.
    pub fn causal(n_past: usize, n_new: usize) -> Self {
        Self {
            ranges: (0..n_new).map(|i| (0, (n_past + i + 1) as u32)).collect(),
            extra: Vec::new(),
            scaled_keys: (0, 0),
            row_scale: Vec::new(),
            head_scale: Vec::new(),
            kv_heads: 0,
        }
    }

    /// A mask built from segments of the new tokens, in order, after `n_past` cached keys.
    /// An `Isolated(len)` segment attends only to itself (causally), as a packet computed
    /// alone; a `Global(len)` segment attends causally to everything before it, cache
    /// included; a `Branch(len)` segment attends causally to itself and to every key before
    /// the first branch, not to other branches. This is the block-diagonal student mask of
    /// training (with branches: one document set, several questions). `Context(len)` segments,
    /// which must come first, are isolated blocks that only the `Conditioned(len, j)` segments
    /// naming them (the j-th context, from 0) see; `Global` and `Branch` segments see none of
    /// them (context-only headers: rows a document is computed after but that no request's
    /// cache holds). Errors on a context after another segment or cached keys, or on an unknown
    /// context index.
    pub fn segments(n_past: usize, segs: &[Segment]) -> Result<Self> {
        let mut ranges = Vec::new();
        let mut extra = Vec::new();
        let mut start = n_past;
        let mut contexts = Vec::new();
        let mut fork = None;
        let mut floor = 0;
        for (k, s) in segs.iter().enumerate() {
            let (len, lo, second) = match *s {
                Segment::Context(len) => {
                    if contexts.len() != k || n_past != 0 {
                        bail!("segment {k}: context segments must come first, with no cached keys before them");
                    }
                    contexts.push((start, start + len));
                    floor = start + len;
                    (len, start, (0, 0))
                }
                Segment::Isolated(len) => (len, start, (0, 0)),
                Segment::Conditioned(len, j) => match contexts.get(j) {
                    Some(&c) => (len, start, c),
                    None => bail!("segment {k} is conditioned on context {j}, which does not exist"),
                },
                Segment::Global(len) => (len, floor, (0, 0)),
                Segment::Branch(len) => {
                    let f = *fork.get_or_insert(start);
                    (len, start, (floor, f))
                }
            };
            for i in 0..len {
                ranges.push((lo as u32, (start + i + 1) as u32));
                extra.push((second.0 as u32, second.1 as u32));
            }
            start += len;
        }
        if extra.iter().all(|&(a, b)| a >= b) {
            extra.clear();
        }
        Ok(Self {
            ranges,
            extra,
            scaled_keys: (0, 0),
            row_scale: Vec::new(),
            head_scale: Vec::new(),
            kv_heads: 0,
        })
    }

    /// A general mask from explicit per-query ranges. Each range must be non-empty and,
    /// for a causal model, end at or before the query's own key index + 1 (the caller's duty).
    pub fn from_ranges(ranges: Vec<(u32, u32)>) -> Result<Self> {
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            if lo >= hi {
                bail!("mask row {i} has an empty key range [{lo}, {hi})");
            }
        }
        Ok(Self {
            ranges,
            extra: Vec::new(),
            scaled_keys: (0, 0),
            row_scale: Vec::new(),
            head_scale: Vec::new(),
            kv_heads: 0,
        })
    }

    /// This mask with rows `from_row..` reading the keys of `keys` at their scores times
    /// `scale`, as if those keys were stored multiplied by `scale`: the question tails of the
    /// student reading the packets of an adapter with a key scale, whose documents' own rows
    /// read their keys unscaled. Errors on a scale outside (0, ∞) or rows that do not exist.
    pub fn with_key_scale(mut self, keys: (usize, usize), from_row: usize, scale: f32) -> Result<Self> {
        if !(scale > 0.0 && scale.is_finite()) {
            bail!("key scale {scale} is not a positive number");
        }
        if from_row > self.len() {
            bail!("mask row {from_row} does not exist ({} rows)", self.len());
        }
        self.scaled_keys = (keys.0 as u32, keys.1 as u32);
        self.row_scale = (0..self.len())
            .map(|i| if i < from_row { 0.0 } else { scale })
            .collect();
        Ok(self)
    }

    /// This mask with the rows that [`AttnMask::with_key_scale`] scales also multiplying their
    /// scores against the scaled keys by `scales[l * kv_heads + h]` in layer `l`, kv head `h`
    /// (an adapter's learned per-head key scales). Errors on a length that is not a multiple
    /// of `kv_heads`, or a factor outside (0, ∞).
    pub fn with_head_key_scale(mut self, scales: Vec<f32>, kv_heads: usize) -> Result<Self> {
        if kv_heads == 0 || !scales.len().is_multiple_of(kv_heads) {
            bail!(
                "{} head key scales are not a whole number of layers of {kv_heads} kv heads",
                scales.len()
            );
        }
        if let Some(s) = scales.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            bail!("head key scale {s} is not a positive number");
        }
        self.head_scale = scales;
        self.kv_heads = kv_heads;
        Ok(self)
    }

    /// (layers, kv heads) of the per-head key factors; None when there are none.
    pub fn head_key_scale_shape(&self) -> Option<(usize, usize)> {
        (!self.head_scale.is_empty()).then(|| (self.head_scale.len() / self.kv_heads, self.kv_heads))
    }

    /// The factors of layer `l`'s kv heads on the scaled rows' scores (empty: all 1).
    pub fn layer_key_scale(&self, l: usize) -> &[f32] {
        if self.head_scale.is_empty() {
            return &[];
        }
        &self.head_scale[l * self.kv_heads..(l + 1) * self.kv_heads]
    }

    /// The mask of a subset of the query rows (`rows` index this mask's rows), key ranges kept.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.ranges.len()) {
            bail!("mask row {r} does not exist ({} rows)", self.ranges.len());
        }
        // Per-row fields left empty (no row has one) stay empty.
        fn pick<T: Copy>(v: &[T], rows: &[usize]) -> Vec<T> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| v[r]).collect()
            }
        }
        Ok(Self {
            ranges: pick(&self.ranges, rows),
            extra: pick(&self.extra, rows),
            scaled_keys: self.scaled_keys,
            row_scale: pick(&self.row_scale, rows),
            head_scale: self.head_scale.clone(),
            kv_heads: self.kv_heads,
        })
    }

    /// Number of query rows.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when there are no query rows.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The key range of query row `i` (besides its second range, see [`AttnMask::extra`]).
    pub fn range(&self, i: usize) -> (usize, usize) {
        let (lo, hi) = self.ranges[i];
        (lo as usize, hi as usize)
    }

    /// The second key range `[a, b)` query row `i` also sees (empty, `a ≥ b`: none).
    #[inline]
    pub fn extra(&self, i: usize) -> (usize, usize) {
        self.extra.get(i).map_or((0, 0), |&(a, b)| (a as usize, b as usize))
    }

    /// The keys `[c, e)` whose scores row `i` multiplies, and by how much (before any
    /// per-head factor of [`AttnMask::layer_key_scale`]); None when it multiplies none.
    #[inline]
    pub fn key_scale(&self, i: usize) -> Option<(usize, usize, f32)> {
        let f = *self.row_scale.get(i)?;
        let (c, e) = self.scaled_keys;
        (f > 0.0 && (f != 1.0 || !self.head_scale.is_empty()) && c < e).then_some((c as usize, e as usize, f))
    }

    /// The smallest range holding every key row `i` sees.
    pub fn span(&self, i: usize) -> (usize, usize) {
        let (lo, hi) = self.range(i);
        let (a, b) = self.extra(i);
        (if a < b { a.min(lo) } else { lo }, hi)
    }

    /// True when row `i` sees key `key`.
    #[inline]
    pub fn sees(&self, i: usize, key: usize) -> bool {
        let (lo, hi) = self.range(i);
        let (a, b) = self.extra(i);
        (key >= lo && key < hi) || (key >= a && key < b)
    }

    /// True when row `i` sees any key of `[j0, j1)`.
    pub fn touches(&self, i: usize, j0: usize, j1: usize) -> bool {
        let (lo, hi) = self.range(i);
        let (a, b) = self.extra(i);
        (lo < j1 && hi > j0) || (a < b && a < j1 && b > j0)
    }

    /// The largest key index any row reads, plus one.
    pub fn max_key(&self) -> usize {
        self.ranges.iter().map(|r| r.1 as usize).max().unwrap_or(0)
    }
}

/// A run of new tokens in a [`AttnMask::segments`] mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Attends only to itself, causally (a packet block `[H; D; T]`).
    Isolated(usize),
    /// Attends only to itself, causally, and is seen only by the `Conditioned` segments that
    /// name it (a context-only header); every context comes before all other segments.
    Context(usize),
    /// Attends causally to itself and to the whole of the given context segment (by index,
    /// from 0): a `[D; T]` block computed after a header its packet does not keep.
    Conditioned(usize, usize),
    /// Attends causally to everything before it.
    Global(usize),
    /// Attends causally to itself and to everything before the first branch of the mask,
    /// not to the other branches (one question tail of several over the same documents).
    Branch(usize),
}
