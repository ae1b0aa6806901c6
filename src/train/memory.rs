//! Memory of a training step: what the process peaked at (logged per step) and what the
//! student's graph for the largest sample is expected to take, checked before the first step,
//! so a run that would be killed for memory (silently, by the kernel) is warned about first.
//!
//! Read from Linux's `/proc` and cgroup files by hand: the two numbers needed (peak resident
//! set, memory available) are one line each, and a system-information crate would bring far
//! more than that. Elsewhere the functions return `None` and no check is made.

use crate::model::Config;

/// Bytes of one `Key:   N kB` line of a `/proc` file.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The highest resident set size this process has had so far, in bytes (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// This process's resident set size now, in bytes (Linux only).
pub fn rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmRSS:")
}

/// Bytes this process can still allocate before the kernel kills it: the machine's available
/// memory, or the container's limit less its usage when that is lower (Linux only).
pub fn available_bytes() -> Option<u64> {
    let machine = proc_kb("/proc/meminfo", "MemAvailable:")?;
    let cgroup = |f: &str| -> Option<u64> { std::fs::read_to_string(f).ok()?.trim().parse().ok() };
    let container = cgroup("/sys/fs/cgroup/memory.max")
        .zip(cgroup("/sys/fs/cgroup/memory.current"))
        .map(|(max, used)| max.saturating_sub(used));
    Some(container.map_or(machine, |c| c.min(machine)))
}

/// f32 values the student's graph holds per row and layer, in units of the hidden size and of
/// the MLP's width; per scored row, in units of the vocabulary (logits, log-softmax, their
/// gradients); and per row and layer with recomputation (each layer's input, kept). Fitted to
/// the `peak_rss_gb` of one-sample runs at 200-6,300 rows (biography sets and MuSiQue
/// windows): SmolLM2 ~0.6-0.85 MB a row, Qwen2.5-0.5B ~1.35 MB a row and ~6 MB a scored row,
/// SmolLM2 with recomputation ~0.15 MB a row; rounded up.
const PER_HIDDEN: f64 = 6.0;
const PER_MLP: f64 = 2.0;
const PER_VOCAB: f64 = 10.0;
const PER_HIDDEN_KEPT: f64 = 2.0;

/// Expected bytes of the student's forward and backward on a sequence of `rows` rows of which
/// `scored` have logits, beyond what the process holds before (the weights): every layer's
/// graph, or with `checkpoint` every layer's input and one layer's graph at a time. An
/// estimate (within about 1.5× of what was measured on the default models) for warning
/// before a run, not a bound.
pub fn student_step_bytes(config: &Config, rows: usize, scored: usize, checkpoint: bool) -> u64 {
    let (hidden, layers) = (config.hidden_size as f64, config.n_layers as f64);
    let per_layer = PER_HIDDEN * hidden + PER_MLP * config.intermediate_size as f64;
    let per_row = if checkpoint {
        per_layer + layers * PER_HIDDEN_KEPT * hidden
    } else {
        layers * per_layer
    };
    let values = rows as f64 * per_row + scored as f64 * PER_VOCAB * config.vocab_size as f64;
    (values * 4.0) as u64
}

/// The expected memory of the student's step on one sample, with and without layer
/// recomputation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepMemory {
    /// Rows of the student's sequence.
    pub rows: usize,
    /// Rows of the sequence with logits (the teacher tokens' predictions).
    pub scored: usize,
    /// [`student_step_bytes`] without recomputation.
    pub plain: u64,
    /// Bytes of the step with recomputation.
    pub checkpointed: u64,
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

impl StepMemory {
    /// The estimate for a sequence of `rows` rows, `scored` of them scored.
    pub fn of(config: &Config, rows: usize, scored: usize) -> StepMemory {
        StepMemory {
            rows,
            scored,
            plain: student_step_bytes(config, rows, scored, false),
            checkpointed: student_step_bytes(config, rows, scored, true),
        }
    }

    /// The bytes with `checkpoint` (layer recomputation) on or off.
    pub fn bytes(&self, checkpoint: bool) -> u64 {
        if checkpoint { self.checkpointed } else { self.plain }
    }

    /// One line for the start of a run: the largest sample, what its step needs and, when
    /// known, what the process holds already (`resident` bytes: the weights and teacher outputs).
    pub fn describe(&self, checkpoint: bool, resident: Option<u64>) -> String {
        format!(
            "largest training sample: {} rows ({} scored), a step needs about {:.1} GB beyond the weights{}{}",
            self.rows,
            self.scored,
            gb(self.bytes(checkpoint)),
            if checkpoint { " (layers recomputed)" } else { "" },
            resident.map_or(String::new(), |r| format!("; the process holds {:.2} GB now", gb(r)))
        )
    }

    /// The warning due when the step needs more than the `available` bytes (none otherwise):
    /// the kernel would kill the run mid-step without a word. Says what layer recomputation
    /// (`--grad-checkpoint`, same loss and gradient) would need, or what else to shrink when
    /// it is already on.
    pub fn warning(&self, available: u64, checkpoint: bool) -> Option<String> {
        let need = self.bytes(checkpoint);
        if need <= available {
            return None;
        }
        let advice = if checkpoint {
            "use fewer or shorter documents per sample (--k-max, --max-docs, --chunk-tokens) or fewer questions"
                .to_string()
        } else {
            format!(
                "rerun (or --resume) with --grad-checkpoint: about {:.1} GB, same loss and gradient, a little slower",
                gb(self.checkpointed)
            )
        };
        Some(format!(
            "the largest training sample ({} rows, {} scored) is expected to need about {:.1} GB for a step, \
             beyond the {:.1} GB available: the run may be killed for memory; {advice}",
            self.rows,
            self.scored,
            gb(need),
            gb(available)
        ))
    }
}
