//! Attention masks as one key range per query row: no dense n×n tensor is ever built.

use anyhow::{Result, bail};

/// For each query row `i`, the half-open range of key indices `[lo, hi)` it attends to.
/// Causal, prefix and block-diagonal masks are all of this form; any mask whose allowed
/// keys are contiguous for every query can be expressed (`from_ranges`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttnMask {
    ranges: Vec<(u32, u32)>,
}

impl AttnMask {
    /// Plain causal attention for `n_new` queries appended after `n_past` cached keys:
    /// query i sees keys `[0, n_past + i + 1)`.
    pub fn causal(n_past: usize, n_new: usize) -> Self {
        Self {
            ranges: (0..n_new).map(|i| (0, (n_past + i + 1) as u32)).collect(),
        }
    }

    /// A mask built from segments of the new tokens, in order, after `n_past` cached keys.
    /// An `Isolated(len)` segment attends only to itself (causally), as a packet computed
    /// alone; a `Global(len)` segment attends causally to everything before it, cache
    /// included. This is the block-diagonal student mask of training.
    pub fn segments(n_past: usize, segs: &[Segment]) -> Self {
        let mut ranges = Vec::new();
        let mut start = n_past;
        for s in segs {
            let (len, lo) = match *s {
                Segment::Isolated(len) => (len, start),
                Segment::Global(len) => (len, 0),
            };
            for i in 0..len {
                ranges.push((lo as u32, (start + i + 1) as u32));
            }
            start += len;
        }
        Self { ranges }
    }

    /// A general mask from explicit per-query ranges. Each range must be non-empty and,
    /// for a causal model, end at or before the query's own key index + 1 (the caller's duty).
    pub fn from_ranges(ranges: Vec<(u32, u32)>) -> Result<Self> {
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            if lo >= hi {
                bail!("mask row {i} has an empty key range [{lo}, {hi})");
            }
        }
        Ok(Self { ranges })
    }

    /// The mask of a subset of the query rows (`rows` index this mask's rows), key ranges kept.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.ranges.len()) {
            bail!("mask row {r} does not exist ({} rows)", self.ranges.len());
        }
        Ok(Self {
            ranges: rows.iter().map(|&r| self.ranges[r]).collect(),
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

    /// The key range of query row `i`.
    pub fn range(&self, i: usize) -> (usize, usize) {
        let (lo, hi) = self.ranges[i];
        (lo as usize, hi as usize)
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
}
