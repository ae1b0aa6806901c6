//! Answer metrics: SQuAD-normalised token F1 and exact match, micro and macro averages,
//! ROUGE-L for summaries, and the KL between two next-token distributions.

use std::collections::HashMap;

/// SQuAD normalisation: lowercase, drop punctuation and the articles a/an/the, collapse spaces.
pub fn normalize(s: &str) -> String {
    let lower: String = s.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Token overlap of a prediction with one reference: (common, predicted, reference) counts.
pub fn overlap(pred: &str, gold: &str) -> (usize, usize, usize) {
    let p = normalize(pred);
    let g = normalize(gold);
    let (pt, gt): (Vec<&str>, Vec<&str>) = (p.split_whitespace().collect(), g.split_whitespace().collect());
    let mut counts: HashMap<&str, isize> = HashMap::new();
    gt.iter().for_each(|t| *counts.entry(t).or_default() += 1);
    let mut common = 0;
    for t in &pt {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            common += 1;
        }
    }
    (common, pt.len(), gt.len())
}

fn f1_of(common: usize, pred: usize, gold: usize) -> f64 {
    if pred == 0 && gold == 0 {
        return 1.0;
    }
    if common == 0 {
        return 0.0;
    }
    let (p, r) = (common as f64 / pred as f64, common as f64 / gold as f64);
    2.0 * p * r / (p + r)
}

/// Best F1 over the references, with the overlap counts of that best reference.
pub fn best_f1(pred: &str, golds: &[String]) -> (f64, (usize, usize, usize)) {
    golds
        .iter()
        .map(|g| {
            let o = overlap(pred, g);
            (f1_of(o.0, o.1, o.2), o)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, (0, 0, 0)))
}

/// 1.0 when the normalised prediction equals a normalised reference.
pub fn exact_match(pred: &str, golds: &[String]) -> f64 {
    let p = normalize(pred);
    if golds.iter().any(|g| normalize(g) == p) {
        1.0
    } else {
        0.0
    }
}

/// Micro F1: precision and recall pooled over all samples' overlap counts.
pub fn micro_f1(counts: &[(usize, usize, usize)]) -> f64 {
    let (c, p, g) = counts.iter().fold((0, 0, 0), |a, x| (a.0 + x.0, a.1 + x.1, a.2 + x.2));
    f1_of(c, p, g)
}

/// ROUGE-L F-measure (β = 1) of a prediction against its best reference: longest common
/// token subsequence over both lengths, with the `rouge-score` package's tokenisation
/// (lowercase, every run of non-alphanumeric characters a separator). 0 when either side
/// has no tokens. Hand-written: the LCS is a dozen lines and no maintained crate has it.
pub fn rouge_l(pred: &str, refs: &[String]) -> f64 {
    let tokens = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let p = tokens(pred);
    refs.iter()
        .map(|r| {
            let g = tokens(r);
            // One row of the LCS table at a time.
            let mut row = vec![0usize; g.len() + 1];
            for a in &p {
                let mut diag = 0;
                for (j, b) in g.iter().enumerate() {
                    let up = row[j + 1];
                    row[j + 1] = if a == b { diag + 1 } else { up.max(row[j]) };
                    diag = up;
                }
            }
            let lcs = row[g.len()];
            if lcs == 0 { 0.0 } else { f1_of(lcs, p.len(), g.len()) }
        })
        .fold(0.0, f64::max)
}

/// KL(p ‖ q) of two distributions given as log-probabilities.
pub fn kl(logp: &[f32], logq: &[f32]) -> f64 {
    logp.iter()
        .zip(logq)
        .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation_and_f1() {
        assert_eq!(normalize("The  Eiffel Tower!"), "eiffel tower");
        assert_eq!(normalize("An apple, a day."), "apple day");
        let g = vec!["Eiffel Tower".to_string(), "the tower".to_string()];
        assert_eq!(best_f1("the Eiffel Tower.", &g).0, 1.0);
        // pred {paris, france} vs gold {paris}: P = 1/2, R = 1 -> F1 = 2/3.
        assert!((best_f1("Paris, France", &["Paris".into()]).0 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(best_f1("London", &["Paris".into()]).0, 0.0);
        assert_eq!(exact_match("the paris", &["Paris".into()]), 1.0);
        assert_eq!(exact_match("paris france", &["Paris".into()]), 0.0);
    }

    #[test]
    fn micro_differs_from_macro_as_computed_by_hand() {
        // Sample 1: pred "a b c d" (4 tokens, after articles: "b c d" = 3), gold "b" -> common 1.
        // Use article-free words to keep the hand count simple.
        let s1 = overlap("x y z w", "x"); // common 1, pred 4, gold 1: F1 = 2·0.25·1/1.25 = 0.4
        let s2 = overlap("q", "q"); // F1 = 1
        assert_eq!(s1, (1, 4, 1));
        let macro_f1 = (f1_of(s1.0, s1.1, s1.2) + f1_of(s2.0, s2.1, s2.2)) / 2.0;
        assert!((macro_f1 - 0.7).abs() < 1e-12);
        // Pooled: common 2, pred 5, gold 2: P 0.4, R 1 -> 0.8 / 1.4 = 0.5714…
        assert!((micro_f1(&[s1, s2]) - 0.8 / 1.4).abs() < 1e-12);
    }

    #[test]
    fn rouge_l_by_hand() {
        // LCS of "the cat sat on the mat" and "the cat on the mat" is the whole reference
        // (5 tokens): P = 5/6, R = 1, F = 10/11.
        let r = rouge_l("The cat sat on the mat.", &["the cat on the mat".into()]);
        assert!((r - 10.0 / 11.0).abs() < 1e-12);
        // Order matters (unlike F1): "b a" vs "a b" shares a subsequence of 1: P = R = 1/2.
        assert!((rouge_l("b a", &["a b".into()]) - 0.5).abs() < 1e-12);
        // Best of the references; no tokens → 0.
        assert_eq!(rouge_l("x y", &["z".into(), "x y".into()]), 1.0);
        assert_eq!(rouge_l("", &["x".into()]), 0.0);
        assert_eq!(rouge_l("x", &[]), 0.0);
    }

    #[test]
    fn kl_is_zero_for_equal_and_positive_otherwise() {
        let p = [0.5f32.ln(), 0.5f32.ln()];
        let q = [0.9f32.ln(), 0.1f32.ln()];
        assert!(kl(&p, &p).abs() < 1e-12);
        let want = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!((kl(&p, &q) - want).abs() < 1e-6);
    }
}
