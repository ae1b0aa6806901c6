//! Attention masks as one key range per query row, optionally after a shared prefix of keys:
//! no dense n×n tensor is ever built.

use anyhow::{Result, bail};

/// For each query row `i`, the half-open range of key indices `[lo, hi)` it attends to, and
/// optionally a shared prefix `[0, p)` with `p ≤ lo` that it also attends to. Causal, prefix
/// and block-diagonal masks are one range per row; the prefix adds branches: several
/// question tails that each see the same documents and only themselves (`Segment::Branch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttnMask {
    ranges: Vec<(u32, u32)>,
    /// Per row, the end of the shared key prefix (empty: no row has one).
    prefix: Vec<u32>,
}

impl AttnMask {
    /// Plain causal attention for `n_new` queries appended after `n_past` cached keys:
    /// query i sees keys `[0, n_past + i + 1)`.
    pub fn causal(n_past: usize, n_new: usize) -> Self {
        Self {
            ranges: (0..n_new).map(|i| (0, (n_past + i + 1) as u32)).collect(),
            prefix: Vec::new(),
        }
    }

    /// A mask built from segments of the new tokens, in order, after `n_past` cached keys.
    /// An `Isolated(len)` segment attends only to itself (causally), as a packet computed
    /// alone; a `Global(len)` segment attends causally to everything before it, cache
    /// included; a `Branch(len)` segment attends causally to itself and to every key before
    /// the first branch, not to other branches. This is the block-diagonal student mask of
    /// training (with branches: one document set, several questions).
    pub fn segments(n_past: usize, segs: &[Segment]) -> Self {
        let mut ranges = Vec::new();
        let mut prefix = Vec::new();
        let mut start = n_past;
        let mut fork = None;
        for s in segs {
            let (len, lo, shared) = match *s {
                Segment::Isolated(len) => (len, start, 0),
                Segment::Global(len) => (len, 0, 0),
                Segment::Branch(len) => {
                    let f = *fork.get_or_insert(start);
                    (len, start, f)
                }
            };
            for i in 0..len {
                ranges.push((lo as u32, (start + i + 1) as u32));
                prefix.push(shared as u32);
            }
            start += len;
        }
        if prefix.iter().all(|&p| p == 0) {
            prefix.clear();
        }
        Self { ranges, prefix }
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
            prefix: Vec::new(),
        })
    }

    /// The mask of a subset of the query rows (`rows` index this mask's rows), key ranges kept.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.ranges.len()) {
            bail!("mask row {r} does not exist ({} rows)", self.ranges.len());
        }
        Ok(Self {
            ranges: rows.iter().map(|&r| self.ranges[r]).collect(),
            prefix: match self.prefix.is_empty() {
                true => Vec::new(),
                false => rows.iter().map(|&r| self.prefix[r]).collect(),
            },
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

    /// The key range of query row `i` (besides its shared prefix, see [`AttnMask::prefix`]).
    pub fn range(&self, i: usize) -> (usize, usize) {
        let (lo, hi) = self.ranges[i];
        (lo as usize, hi as usize)
    }

    /// End of the shared key prefix `[0, p)` query row `i` also sees (0: none).
    #[inline]
    pub fn prefix(&self, i: usize) -> usize {
        self.prefix.get(i).map_or(0, |&p| p as usize)
    }

    /// The smallest range holding every key row `i` sees.
    pub fn span(&self, i: usize) -> (usize, usize) {
        let (lo, hi) = self.range(i);
        (if self.prefix(i) > 0 { 0 } else { lo }, hi)
    }

    /// True when row `i` sees key `key`.
    #[inline]
    pub fn sees(&self, i: usize, key: usize) -> bool {
        let (lo, hi) = self.range(i);
        (key >= lo && key < hi) || key < self.prefix(i)
    }

    /// True when row `i` sees any key of `[j0, j1)`.
    pub fn touches(&self, i: usize, j0: usize, j1: usize) -> bool {
        let (lo, hi) = self.range(i);
        (lo < j1 && hi > j0) || j0 < self.prefix(i)
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
    /// Attends causally to everything before it.
    Global(usize),
    /// Attends causally to itself and to everything before the first branch of the mask,
    /// not to the other branches (one question tail of several over the same documents).
    Branch(usize),
}
