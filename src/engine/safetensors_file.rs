//! `.safetensors` files, read one tensor at a time and written as a stream.
//!
//! [`SafetensorsFile::open`] reads only the header (names, dtypes, shapes,
//! offsets and metadata) and checks it against the file's length, so a
//! truncated download or a Git LFS pointer fails at once with a clear error
//! and every name and shape can be checked before a single weight is read.
//! Each tensor is then read on request with a positioned read of exactly its
//! bytes and decoded to `f32` (F32, F16 and BF16 are what SD checkpoints
//! hold): loading a 7 GB checkpoint holds one tensor's bytes at a time, never
//! the file. Positioned reads rather than a memory map, because the pages of
//! a mapping stay in the process's resident memory once touched; what is
//! read here is freed as soon as the tensor is converted.
//!
//! [`StreamWriter`] writes a file whose tensors are produced one by one (a
//! random full-size checkpoint, for tests and benchmarks), so writing never
//! holds more than one tensor either.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};

use super::EngineError;

/// Where the tensor bytes come from.
enum Source {
    File(File),
    Memory(Vec<u8>),
}

/// A safetensors file: its index and metadata, with the bytes left on disk.
pub struct SafetensorsFile {
    pub path: PathBuf,
    source: Source,
    data_start: u64,
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

/// safetensors' own bound on the header (100 MB).
const MAX_HEADER: u64 = 100_000_000;

fn dtype_size(dtype: Dtype) -> Option<usize> {
    Some(match dtype {
        Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
        Dtype::F16 | Dtype::BF16 | Dtype::I16 | Dtype::U16 => 2,
        Dtype::I8 | Dtype::U8 | Dtype::BOOL | Dtype::F8_E4M3 | Dtype::F8_E5M2 => 1,
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Reads and checks the header; the tensors stay on disk.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let read_err = |source| EngineError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_err)?;
        let file_len = file.metadata().map_err(read_err)?.len();
        let bad = |reason: String| EngineError::BadWeights {
            path: path.to_path_buf(),
            reason,
        };
        if file_len < 8 {
            return Err(bad(format!(
                "it is {file_len} bytes long, too short for a safetensors header"
            )));
        }
        let mut len_bytes = [0u8; 8];
        read_exact_at(&file, &mut len_bytes, 0).map_err(read_err)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER || header_len + 8 > file_len {
            return Err(bad(not_safetensors(&file, file_len)));
        }
        let mut header = vec![0u8; header_len as usize];
        read_exact_at(&file, &mut header, 8).map_err(read_err)?;
        let index = Self::parse_header(path, &header, file_len - 8 - header_len)?;
        Ok(Self {
            path: path.to_path_buf(),
            source: Source::File(file),
            data_start: 8 + header_len,
            index: index.0,
            metadata: index.1,
        })
    }

    /// Indexes bytes already in memory; `path` only names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::BadWeights {
            path: path.to_path_buf(),
            reason,
        };
        let (header_len, _) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let header = &bytes[8..8 + header_len];
        let data_len = (bytes.len() - 8 - header_len) as u64;
        let (index, metadata) = Self::parse_header(path, header, data_len)?;
        Ok(Self {
            path: path.to_path_buf(),
            source: Source::Memory(bytes),
            data_start: 8 + header_len as u64,
            index,
            metadata,
        })
    }

    /// The header's tensors and metadata, each tensor checked to lie inside
    /// the `data_len` bytes that follow the header.
    #[allow(clippy::type_complexity)]
    fn parse_header(
        path: &Path,
        header: &[u8],
        data_len: u64,
    ) -> Result<(BTreeMap<String, TensorInfo>, BTreeMap<String, String>), EngineError> {
        let bad = |reason: String| EngineError::BadWeights {
            path: path.to_path_buf(),
            reason,
        };
        let parsed: Metadata = serde_json::from_slice(header)
            .map_err(|e| bad(format!("its header is not a safetensors index ({e})")))?;
        let mut index = BTreeMap::new();
        for (name, info) in parsed.tensors() {
            let numel: usize = info.shape.iter().product();
            let (start, end) = info.data_offsets;
            let expected = dtype_size(info.dtype).map(|size| numel * size);
            if end < start || expected.is_some_and(|n| n != end - start) {
                return Err(bad(format!(
                    "tensor `{name}` has {} bytes for shape {:?} in {:?}",
                    end.saturating_sub(start),
                    info.shape,
                    info.dtype
                )));
            }
            if end as u64 > data_len {
                return Err(bad(format!(
                    "tensor `{name}` runs past the end of the file (the file is truncated: download it again)"
                )));
            }
            index.insert(name, info.clone());
        }
        let metadata = parsed
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok((index, metadata))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> + Clone {
        self.index.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.index.get(key).map(|info| info.shape.as_slice())
    }

    pub fn dtype(&self, key: &str) -> Option<Dtype> {
        self.index.get(key).map(|info| info.dtype)
    }

    fn info(&self, key: &str) -> Result<&TensorInfo, EngineError> {
        self.index.get(key).ok_or_else(|| EngineError::BadWeights {
            path: self.path.clone(),
            reason: format!("no tensor named `{key}`"),
        })
    }

    /// The tensor's raw little-endian bytes.
    fn raw(&self, info: &TensorInfo) -> Result<std::borrow::Cow<'_, [u8]>, EngineError> {
        let (start, end) = info.data_offsets;
        match &self.source {
            Source::Memory(bytes) => {
                let at = self.data_start as usize;
                Ok(std::borrow::Cow::Borrowed(&bytes[at + start..at + end]))
            }
            Source::File(file) => {
                let mut buffer = vec![0u8; end - start];
                read_exact_at(file, &mut buffer, self.data_start + start as u64).map_err(
                    |source| EngineError::Read {
                        path: self.path.clone(),
                        source,
                    },
                )?;
                Ok(std::borrow::Cow::Owned(buffer))
            }
        }
    }

    /// The tensor's values as `f32`, with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), EngineError> {
        let info = self.info(key)?;
        let raw = self.raw(info)?;
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
        let info = self.info(key)?;
        let raw = self.raw(info)?;
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

/// Why a file whose header length makes no sense is not a checkpoint, with
/// the two usual causes told apart.
fn not_safetensors(file: &File, file_len: u64) -> String {
    let mut start = vec![0u8; file_len.min(200) as usize];
    let _ = read_exact_at(file, &mut start, 0);
    if start.starts_with(b"version https://git-lfs") {
        "it is a Git LFS pointer, not the weights (run `git lfs pull`, or download the file itself)"
            .into()
    } else {
        "its header is cut short or not a safetensors header (a truncated download, or another format)"
            .into()
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buffer.is_empty() {
        match file.seek_read(buffer, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buffer = &mut buffer[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One tensor to write: its name, dtype and shape; the bytes come later.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorEntry {
    pub fn byte_len(&self) -> usize {
        self.shape.iter().product::<usize>() * dtype_size(self.dtype).unwrap_or(1)
    }
}

/// Writes a safetensors file whose tensors are produced one at a time: the
/// header is written first from the entries, then [`StreamWriter::write_next`]
/// takes each tensor's bytes in the entries' order.
pub struct StreamWriter {
    out: BufWriter<File>,
    entries: Vec<TensorEntry>,
    next: usize,
    path: PathBuf,
}

impl StreamWriter {
    /// Creates `path` and writes the header for `entries` (stored in this
    /// order) and `metadata`.
    pub fn create(
        path: &Path,
        entries: Vec<TensorEntry>,
        metadata: &BTreeMap<String, String>,
    ) -> std::io::Result<Self> {
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert(
                "__metadata__".into(),
                serde_json::to_value(metadata).map_err(std::io::Error::other)?,
            );
        }
        let mut offset = 0usize;
        for e in &entries {
            let end = offset + e.byte_len();
            header.insert(
                e.name.clone(),
                serde_json::json!({
                    "dtype": format!("{:?}", e.dtype),
                    "shape": e.shape,
                    "data_offsets": [offset, end],
                }),
            );
            offset = end;
        }
        let mut text = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        // safetensors pads the header with spaces to a multiple of 8
        while text.len() % 8 != 0 {
            text.push(b' ');
        }
        // Streams tensors too large to hold; only the toy checkpoint writer
        // uses it, into a file of its own.
        #[allow(clippy::disallowed_methods)]
        let file = File::create(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&(text.len() as u64).to_le_bytes())?;
        out.write_all(&text)?;
        Ok(Self {
            out,
            entries,
            next: 0,
            path: path.to_path_buf(),
        })
    }

    /// The entry whose bytes come next, if any.
    pub fn peek(&self) -> Option<&TensorEntry> {
        self.entries.get(self.next)
    }

    /// Writes the next tensor's bytes; they must be exactly its length.
    pub fn write_next(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(entry) = self.entries.get(self.next) else {
            return Err(std::io::Error::other(format!(
                "{}: more tensors than the header announced",
                self.path.display()
            )));
        };
        if bytes.len() != entry.byte_len() {
            return Err(std::io::Error::other(format!(
                "`{}` needs {} bytes, got {}",
                entry.name,
                entry.byte_len(),
                bytes.len()
            )));
        }
        self.out.write_all(bytes)?;
        self.next += 1;
        Ok(())
    }

    /// Flushes the file; every announced tensor must have been written.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.next != self.entries.len() {
            return Err(std::io::Error::other(format!(
                "{}: {} of {} tensors written",
                self.path.display(),
                self.next,
                self.entries.len()
            )));
        }
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }
}

/// `values` in `dtype` (F32, F16 or BF16), little-endian.
pub fn encode_floats(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F16 => values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, entries: &[(&str, Dtype, Vec<usize>, Vec<f32>)]) {
        let list = entries
            .iter()
            .map(|(n, d, s, _)| TensorEntry {
                name: n.to_string(),
                dtype: *d,
                shape: s.clone(),
            })
            .collect();
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let mut w = StreamWriter::create(path, list, &meta).unwrap();
        for (_, d, _, v) in entries {
            w.write_next(&encode_floats(v, *d)).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn a_streamed_file_reads_back_through_safetensors_and_us() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        write(
            &path,
            &[
                ("b", Dtype::F16, vec![2, 2], vec![1.0, -2.0, 0.5, 4.0]),
                ("a", Dtype::F32, vec![3], vec![0.25, 1.5, -7.0]),
            ],
        );
        let bytes = std::fs::read(&path).unwrap();
        let theirs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(theirs.tensor("b").unwrap().shape(), &[2, 2]);
        let ours = SafetensorsFile::open(&path).unwrap();
        assert_eq!(ours.read_f32("a").unwrap().0, vec![0.25, 1.5, -7.0]);
        assert_eq!(ours.read_f32("b").unwrap().0, vec![1.0, -2.0, 0.5, 4.0]);
        assert_eq!(ours.metadata.get("format").map(String::as_str), Some("pt"));
    }

    #[test]
    fn a_truncated_file_is_refused_when_opened_with_the_tensor_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        write(&path, &[("weight", Dtype::F32, vec![64], vec![1.0; 64])]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = SafetensorsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("`weight` runs past the end"), "{err}");
    }

    #[test]
    fn a_git_lfs_pointer_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(
            &path,
            "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 4265146304\n",
        )
        .unwrap();
        let err = SafetensorsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("Git LFS pointer"), "{err}");
    }
}
