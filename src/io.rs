//! Small file helpers shared by adapters and packets: atomic writes and safetensors with
//! JSON metadata.

use anyhow::{Context, Result};
use safetensors::{Dtype, tensor::TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: a uniquely named temporary file in the same folder,
/// fsynced, then renamed over `path`. Readers see the old file or the new one, never a part.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// True for a temporary file of [`atomic_write`] whose writing process is gone (killed before
/// its rename): it will never become a file and only takes space.
pub fn is_stale_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.rsplitn(3, '.');
    let (_counter, pid) = (parts.next(), parts.next());
    match pid.and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// One tensor to write: name, dtype, shape and raw little-endian bytes.
pub struct RawTensor {
    /// Tensor name in the file.
    pub name: String,
    /// Element type of `bytes`.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Raw little-endian element bytes, row-major.
    pub bytes: Vec<u8>,
}

/// Serialises tensors plus a `kvpacket` JSON metadata entry into safetensors bytes.
pub fn safetensors_bytes(tensors: &[RawTensor], meta: &serde_json::Value) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|t| Ok((t.name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let info = HashMap::from([("kvpacket".to_string(), meta.to_string())]);
    Ok(safetensors::serialize(views, Some(info))?)
}

/// The `kvpacket` metadata of a safetensors header alone (the JSON between the length prefix
/// and the data), for reading a file's metadata without its payload.
pub fn safetensors_header_meta(header_json: &[u8]) -> Result<serde_json::Value> {
    let header: serde_json::Value = serde_json::from_slice(header_json).context("unreadable safetensors header")?;
    let text = header["__metadata__"]["kvpacket"]
        .as_str()
        .context("no kvpacket metadata in the file")?;
    serde_json::from_str(text).context("kvpacket metadata is not valid JSON")
}

/// Reads the `kvpacket` JSON metadata entry of a whole safetensors file (bytes validated).
pub fn safetensors_meta(bytes: &[u8]) -> Result<serde_json::Value> {
    let (n, _) = safetensors::SafeTensors::read_metadata(bytes).context("not a safetensors file (truncated?)")?;
    safetensors_header_meta(&bytes[8..8 + n])
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// f32 values rounded to f16, as little-endian bytes.
pub fn f16_bytes(x: &[f32]) -> Vec<u8> {
    use half::slice::HalfFloatSliceExt;
    // half's slice conversion uses the CPU's F16C instructions where it has them.
    let mut h = vec![half::f16::ZERO; x.len()];
    h.convert_from_f32_slice(x);
    h.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian f32 or f16 bytes into f32 values.
pub fn decode_floats(bytes: &[u8], dtype: Dtype) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => {
            // Aligned little-endian bytes are read in place by the SIMD slice conversion (no
            // intermediate copy); otherwise value by value.
            use half::slice::HalfFloatSliceExt;
            let mut out = vec![0f32; bytes.len() / 2];
            match bytemuck::try_cast_slice::<u8, half::f16>(bytes) {
                Ok(h) if cfg!(target_endian = "little") => h.convert_to_f32_slice(&mut out),
                _ => out
                    .iter_mut()
                    .zip(bytes.chunks_exact(2))
                    .for_each(|(o, c)| *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
            }
            out
        }
        other => anyhow::bail!("unsupported tensor dtype {other:?}"),
    })
}

/// Reads a JSON-lines file into records (a missing file reads as none; blank lines skipped).
/// A last line that does not parse (a run killed mid-write) is dropped with a warning, so an
/// interrupted run can resume; a bad line anywhere else is an error.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(v) => out.push(v),
            Err(e) if i + 1 == lines.len() && !text.ends_with('\n') => {
                eprintln!("warning: {}: ignoring a cut-off last line ({e})", path.display());
            }
            Err(e) => anyhow::bail!("{}: line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Opens a JSON-lines file for appending (created if missing), first cutting off a last line
/// left without its newline by a killed writer, so new lines never follow a broken one.
pub fn open_jsonl_append(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // Only the last byte is read unless the file is actually cut off.
    let len = file.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        (&file).seek(SeekFrom::End(-1))?;
        (&file).read_exact(&mut last)?;
    }
    if last[0] != b'\n' {
        let text = std::fs::read(path)?;
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        file.set_len(keep as u64)?;
    }
    Ok(file)
}

/// Appends one JSON line with a single write, so concurrent or interrupted writers never
/// leave a line mixed with another.
pub fn append_jsonl<T: serde::Serialize>(file: &mut std::fs::File, value: &T) -> Result<()> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    std::io::Write::write_all(file, line.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_drops_only_a_cut_off_last_line() {
        let dir = std::env::temp_dir().join(format!("kvpacket-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.jsonl");
        let mut f = std::fs::File::create(&p).unwrap();
        append_jsonl(&mut f, &1u32).unwrap();
        append_jsonl(&mut f, &2u32).unwrap();
        std::io::Write::write_all(&mut f, b"{\"cut").unwrap();
        assert_eq!(read_jsonl::<u32>(&p).unwrap(), vec![1, 2]);
        // Resuming drops the cut-off line before appending.
        let mut f = open_jsonl_append(&p).unwrap();
        append_jsonl(&mut f, &3u32).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n2\n3\n");
        assert_eq!(read_jsonl::<u32>(&p).unwrap(), vec![1, 2, 3]);
        std::fs::write(&p, "1\nnot json\n2\n").unwrap();
        assert!(read_jsonl::<u32>(&p).is_err(), "a bad line in the middle is an error");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
