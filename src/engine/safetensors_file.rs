//! One `.safetensors` file read into memory, with its tensors decoded to
//! `f32` on request (F32, F16 and BF16 are what SD checkpoints hold).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use safetensors::tensor::{Dtype, TensorInfo};

use super::EngineError;

/// A safetensors file: its bytes, where the data starts, and its index.
pub struct SafetensorsFile {
    pub path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    index: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Reads and indexes the file; the header is checked here, so a
    /// truncated download or a Git LFS pointer fails now with a clear error.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Indexes bytes already in memory; `path` only names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::BadWeights {
            path: path.to_path_buf(),
            reason,
        };
        let (header_len, metadata) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let index: BTreeMap<String, TensorInfo> = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        let data_start = 8 + header_len;
        for (name, info) in &index {
            if data_start + info.data_offsets.1 > bytes.len() {
                return Err(bad(format!(
                    "tensor `{name}` runs past the end of the file"
                )));
            }
        }
        let meta = metadata
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            data_start,
            index,
            metadata: meta,
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.index.get(key).map(|info| info.shape.as_slice())
    }

    /// The tensor's values as `f32`, with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), EngineError> {
        let info = self.index.get(key).ok_or_else(|| EngineError::BadWeights {
            path: self.path.clone(),
            reason: format!("no tensor named `{key}`"),
        })?;
        let (start, end) = info.data_offsets;
        let raw = &self.bytes[self.data_start + start..self.data_start + end];
        let values = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(EngineError::BadWeights {
                    path: self.path.clone(),
                    reason: format!(
                        "tensor `{key}` is {other:?}; only F32, F16 and BF16 weights can be loaded"
                    ),
                });
            }
        };
        Ok((values, info.shape.clone()))
    }

    /// An integer tensor (token ids) as `i64`, with its shape.
    pub fn read_i64(&self, key: &str) -> Result<(Vec<i64>, Vec<usize>), EngineError> {
        let info = self.index.get(key).ok_or_else(|| EngineError::BadWeights {
            path: self.path.clone(),
            reason: format!("no tensor named `{key}`"),
        })?;
        let (start, end) = info.data_offsets;
        let raw = &self.bytes[self.data_start + start..self.data_start + end];
        let values = match info.dtype {
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            other => {
                return Err(EngineError::BadWeights {
                    path: self.path.clone(),
                    reason: format!("tensor `{key}` is {other:?}; token ids must be I64 or I32"),
                });
            }
        };
        Ok((values, info.shape.clone()))
    }
}
