use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() {
    let d = Device::Cpu;
    for (m, k, n) in [(512usize, 576usize, 1536usize), (2048, 576, 3072), (1, 576, 1536)] {
        let x = Tensor::randn(0f32, 1., (m, k), &d).unwrap();
        let w = Tensor::randn(0f32, 1., (n, k), &d).unwrap();
        let wt = w.t().unwrap().contiguous().unwrap();
        for (name, r) in [("w.t()", w.t().unwrap()), ("contig", wt.clone())] {
            x.matmul(&r).unwrap();
            let t0 = Instant::now();
            let it = if m == 1 { 200 } else { 10 };
            for _ in 0..it {
                x.matmul(&r).unwrap();
            }
            let s = t0.elapsed().as_secs_f64() / it as f64;
            println!("{m}x{k}x{n} {name}: {:.1} GFLOP/s", 2.0 * (m * k * n) as f64 / s / 1e9);
        }
        for dt in [
            candle_core::quantized::GgmlDType::Q8_0,
            candle_core::quantized::GgmlDType::Q4_0,
        ] {
            let q = candle_core::quantized::QMatMul::from_qtensor(
                candle_core::quantized::QTensor::quantize(&w, dt).unwrap(),
            )
            .unwrap();
            use candle_core::Module;
            q.forward(&x).unwrap();
            let t0 = Instant::now();
            let it = if m == 1 { 200 } else { 3 };
            for _ in 0..it {
                q.forward(&x).unwrap();
            }
            let s = t0.elapsed().as_secs_f64() / it as f64;
            println!("{m}x{k}x{n} {dt:?}: {:.1} GFLOP/s", 2.0 * (m * k * n) as f64 / s / 1e9);
        }
    }
}
#[allow(dead_code)]
fn q8() {}
