//! The safetensors files the engine's tests write for themselves: a tensor
//! as its dtype, shape and little-endian bytes, and one writer shared by the
//! end-to-end tests and the reference tests.

use std::collections::BTreeMap;
use std::path::Path;

/// A tensor to write: its dtype, shape and little-endian bytes.
pub(super) type Raw = (safetensors::Dtype, Vec<usize>, Vec<u8>);

/// An f32 tensor of `shape` holding `values`.
pub(super) fn f32_raw(shape: &[usize], values: &[f32]) -> Raw {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (safetensors::Dtype::F32, shape.to_vec(), bytes)
}

/// Writes `tensors` to `path` as one safetensors file, making its folder.
pub(super) fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Raw>) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (k.clone(), view)
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
