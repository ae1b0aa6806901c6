//! Summary statistics per dataset and method, the markdown report and the plots.

use super::Record;
use super::metrics::micro_f1;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Aggregates of one method on one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    /// Token F1 from overlap counts summed over the records.
    pub f1_micro: f64,
    /// Mean of the records' token F1.
    pub f1_macro: f64,
    /// Mean exact match.
    pub em: f64,
    /// Mean token F1 against `full`'s answers.
    pub fidelity_f1: f64,
    /// Mean KL(full ‖ method) of the first answer token.
    pub first_token_kl: f64,
    /// Mean ROUGE-L over the records that have it (summarization samples); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// Mean time to first token, milliseconds.
    pub ttft_ms_mean: f64,
    /// Median time to first token, milliseconds.
    pub ttft_ms_p50: f64,
    /// Mean document FLOPs per request.
    pub doc_flops_mean: f64,
    /// Mean recomputed document tokens per request.
    pub recomputed_tokens_mean: f64,
    /// Records aggregated.
    pub n: usize,
}

/// dataset → method → summary.
pub type Summary = BTreeMap<String, BTreeMap<String, MethodSummary>>;

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Summarises records per dataset and method.
pub fn summarize(records: &[Record]) -> Summary {
    let mut groups: BTreeMap<(String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups.entry((r.dataset.clone(), r.method.clone())).or_default().push(r);
    }
    let mut out = Summary::new();
    for ((d, m), rs) in groups {
        let s = MethodSummary {
            f1_micro: micro_f1(&rs.iter().map(|r| r.overlap).collect::<Vec<_>>()),
            f1_macro: mean(rs.iter().map(|r| r.f1)),
            em: mean(rs.iter().map(|r| r.em)),
            fidelity_f1: mean(rs.iter().map(|r| r.fidelity_f1)),
            first_token_kl: mean(rs.iter().map(|r| r.first_token_kl)),
            rouge_l: rs
                .iter()
                .any(|r| r.rouge_l.is_some())
                .then(|| mean(rs.iter().filter_map(|r| r.rouge_l))),
            ttft_ms_mean: mean(rs.iter().map(|r| r.ttft_ms)),
            ttft_ms_p50: median(rs.iter().map(|r| r.ttft_ms).collect()),
            doc_flops_mean: mean(rs.iter().map(|r| r.doc_flops)),
            recomputed_tokens_mean: mean(rs.iter().map(|r| r.recomputed_tokens as f64)),
            n: rs.len(),
        };
        out.entry(d).or_default().insert(m, s);
    }
    out
}

/// The markdown report: one table per dataset (with a ROUGE-L column where the dataset
/// has summarization samples).
pub fn markdown(summary: &Summary, header: &str) -> String {
    let mut s = format!("{header}\n");
    for (d, methods) in summary {
        let rouge = methods.values().any(|x| x.rouge_l.is_some());
        let (rouge_head, rouge_rule) = if rouge { (" ROUGE-L |", "---|") } else { ("", "") };
        s += &format!(
            "\n## {d}\n\n| method | n | F1 micro | F1 macro | EM |{rouge_head} fidelity F1 | first-token KL | TTFT mean ms | TTFT p50 ms | doc FLOPs | recomputed tokens |\n|---|---|---|---|---|{rouge_rule}---|---|---|---|---|---|\n"
        );
        for (m, x) in methods {
            let rouge_cell = match (rouge, x.rouge_l) {
                (false, _) => String::new(),
                (true, Some(r)) => format!(" {r:.3} |"),
                (true, None) => " – |".to_string(),
            };
            s += &format!(
                "| {m} | {} | {:.3} | {:.3} | {:.3} |{rouge_cell} {:.3} | {:.4} | {:.0} | {:.0} | {:.2e} | {:.0} |\n",
                x.n,
                x.f1_micro,
                x.f1_macro,
                x.em,
                x.fidelity_f1,
                x.first_token_kl,
                x.ttft_ms_mean,
                x.ttft_ms_p50,
                x.doc_flops_mean,
                x.recomputed_tokens_mean
            );
        }
    }
    s
}

/// The plots' y axis: answer F1, or ROUGE-L for a summarization dataset.
const QUALITY_AXIS: &str = "F1 micro (ROUGE-L for summaries)";

/// Writes summary.json, report.md and the F1-vs-TTFT and F1-vs-FLOPs plots into `dir`.
pub fn write_report(dir: &Path, records: &[Record], header: &str) -> Result<Summary> {
    let summary = summarize(records);
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    std::fs::write(dir.join("report.md"), markdown(&summary, header))?;
    let points = |f: &dyn Fn(&MethodSummary) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        summary
            .iter()
            .flat_map(|(d, ms)| {
                ms.iter()
                    .map(move |(m, x)| (format!("{d} {m}"), vec![(f(x), x.rouge_l.unwrap_or(x.f1_micro))]))
            })
            .collect()
    };
    crate::plot::scatter_chart(
        &dir.join("f1_vs_ttft.svg"),
        "F1 vs TTFT",
        "TTFT ms (log)",
        QUALITY_AXIS,
        &points(&|x| x.ttft_ms_mean.max(1e-3)),
    )?;
    crate::plot::scatter_chart(
        &dir.join("f1_vs_flops.svg"),
        "F1 vs document FLOPs",
        "FLOPs on document KV (log)",
        QUALITY_AXIS,
        &points(&|x| x.doc_flops_mean.max(1.0)),
    )?;
    Ok(summary)
}
