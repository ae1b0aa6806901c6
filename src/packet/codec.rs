//! How one K or V array of a packet is stored: f32, f16, or q8 (int8 with one f16 scale per
//! group of 32 values along the head dimension, 16 when the head size is not a multiple of
//! 32: about half the bytes of f16). A packet in memory holds the values exactly as stored
//! (rounded or quantized), so it behaves the same just built or loaded.

use super::KvDtype;
use crate::io::{RawTensor, decode_floats, f16_bytes, f32_bytes};
use anyhow::{Result, bail};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// Values per q8 scale for a head size.
pub fn q8_group(head_dim: usize) -> usize {
    if head_dim.is_multiple_of(32) { 32 } else { 16 }
}

/// (int8 values, f16 scale bits) of `x`: each group's scale is its largest magnitude / 127,
/// rounded to f16 before the values are divided by it.
fn quantize(x: &[f32], group: usize) -> (Vec<i8>, Vec<half::f16>) {
    let mut q = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(x.len() / group);
    for g in x.chunks(group) {
        let amax = g.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = half::f16::from_f32(amax / 127.0);
        let inv = if s.to_f32() > 0.0 { 1.0 / s.to_f32() } else { 0.0 };
        q.extend(g.iter().map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8));
        scales.push(s);
    }
    (q, scales)
}

fn dequantize(q: &[i8], scales: &[half::f16], group: usize, out: &mut Vec<f32>) {
    for (g, s) in q.chunks(group).zip(scales) {
        let s = s.to_f32();
        out.extend(g.iter().map(|&v| v as f32 * s));
    }
}

/// Rounds `x` in place to what storing it as `dtype` keeps.
pub fn round(dtype: KvDtype, x: &mut [f32], head_dim: usize) {
    match dtype {
        KvDtype::F32 => {}
        KvDtype::F16 => x.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32()),
        KvDtype::Q8 => {
            let g = q8_group(head_dim);
            let (q, s) = quantize(x, g);
            let mut out = Vec::with_capacity(x.len());
            dequantize(&q, &s, g, &mut out);
            x.copy_from_slice(&out);
        }
    }
}

/// Bytes one stored value takes (q8: its share of the group's scale included).
pub fn bytes_per_value(dtype: KvDtype, head_dim: usize) -> f64 {
    match dtype {
        KvDtype::F32 => 4.0,
        KvDtype::F16 => 2.0,
        KvDtype::Q8 => 1.0 + 2.0 / q8_group(head_dim) as f64,
    }
}

/// The tensors that store array `x` of shape [len, kv_heads, head_dim] under `name`: `name`
/// itself and, for q8, `name.scale` [len, kv_heads, head_dim / group].
pub fn encode(dtype: KvDtype, name: &str, x: &[f32], shape: [usize; 3]) -> Vec<RawTensor> {
    match dtype {
        KvDtype::F32 => vec![RawTensor {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: f32_bytes(x),
        }],
        KvDtype::F16 => vec![RawTensor {
            name: name.into(),
            dtype: Dtype::F16,
            shape: shape.to_vec(),
            bytes: f16_bytes(x),
        }],
        KvDtype::Q8 => {
            let g = q8_group(shape[2]);
            let (q, s) = quantize(x, g);
            vec![
                RawTensor {
                    name: name.into(),
                    dtype: Dtype::I8,
                    shape: shape.to_vec(),
                    bytes: q.iter().map(|&v| v as u8).collect(),
                },
                RawTensor {
                    name: format!("{name}.scale"),
                    dtype: Dtype::F16,
                    shape: vec![shape[0], shape[1], shape[2] / g],
                    bytes: s.iter().flat_map(|v| v.to_le_bytes()).collect(),
                },
            ]
        }
    }
}

/// The names of the tensors [`encode`] writes for `name`, in order.
pub fn tensor_names(dtype: KvDtype, name: &str) -> Vec<String> {
    match dtype {
        KvDtype::Q8 => vec![name.to_string(), format!("{name}.scale")],
        _ => vec![name.to_string()],
    }
}

/// The values of an array read back from its tensors (as [`tensor_names`] orders them),
/// after checking their dtypes and shapes against `shape`.
pub fn decode(dtype: KvDtype, parts: &[TensorView], shape: [usize; 3]) -> Result<Vec<f32>> {
    let want = |t: &TensorView, d: Dtype, s: &[usize], what: &str| -> Result<()> {
        if t.dtype() != d || t.shape() != s {
            bail!("{what} is {:?} {:?}, expected {d:?} {s:?}", t.dtype(), t.shape());
        }
        Ok(())
    };
    match (dtype, parts) {
        (KvDtype::F32, [t]) => {
            want(t, Dtype::F32, &shape, "the array")?;
            decode_floats(t.data(), Dtype::F32)
        }
        (KvDtype::F16, [t]) => {
            want(t, Dtype::F16, &shape, "the array")?;
            decode_floats(t.data(), Dtype::F16)
        }
        (KvDtype::Q8, [q, s]) => {
            let g = q8_group(shape[2]);
            want(q, Dtype::I8, &shape, "the array")?;
            want(s, Dtype::F16, &[shape[0], shape[1], shape[2] / g], "its scales")?;
            let scales: Vec<half::f16> = s
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect();
            let q: Vec<i8> = q.data().iter().map(|&b| b as i8).collect();
            let mut out = Vec::with_capacity(q.len());
            dequantize(&q, &scales, g, &mut out);
            Ok(out)
        }
        _ => bail!("wrong number of tensors for a {dtype:?} array"),
    }
}
