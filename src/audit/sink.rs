//! The audit writer: one thread that drains the bounded queue into the
//! configured sinks, so a slow disk or a blocked stdout never holds a
//! request. Stdout has its own handle, separate from the access log's
//! `tracing` writer; each event is one `write` of a whole line, so lines
//! never interleave with each other.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::config::{AuditConfig, FileSink};
use crate::store::{keys, Store};

/// A file that is rotated by size: `path` → `path.1` → … → `path.{keep}`.
pub(crate) struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    pub(crate) fn open(cfg: &FileSink) -> io::Result<Self> {
        let file = open_append(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
            file,
            size,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Writes one whole line, rotating first if it would overflow the file.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
        } else {
            // The oldest is overwritten by the rename chain.
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Audit records may name users and, by opt-in, carry arguments: owner-only.
fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// One queued event: its app (the store stream's key) and its line.
pub(crate) struct Queued {
    pub(crate) app_id: String,
    pub(crate) line: Vec<u8>,
}

/// The store sink: one capped stream per app, written from the writer
/// thread through the gateway's runtime.
pub(crate) struct StoreSink {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) max_entries: usize,
}

/// Starts the writer thread; it ends when every sender is gone.
pub(crate) fn spawn(
    cfg: &AuditConfig,
    store: Option<StoreSink>,
    mut rx: mpsc::Receiver<Queued>,
) -> io::Result<()> {
    let mut file = cfg.file.as_ref().map(RotatingFile::open).transpose()?;
    let stdout = cfg.stdout;
    std::thread::Builder::new()
        .name("drio-audit".into())
        .spawn(move || {
            while let Some(Queued { app_id, line }) = rx.blocking_recv() {
                if let Some(s) = &store {
                    // The stored entry is the event without its newline.
                    let entry = line.strip_suffix(b"\n").unwrap_or(&line);
                    let key = keys::audit_stream(&app_id);
                    let written =
                        s.runtime
                            .block_on(s.store.stream_append(&key, entry, s.max_entries));
                    if let Err(e) = written {
                        tracing::warn!(error = %e, "cannot write an audit event to the store");
                    }
                }
                if stdout {
                    let mut out = io::stdout().lock();
                    if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
                        tracing::warn!(error = %e, "cannot write an audit event to stdout");
                    }
                }
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.write_line(&line) {
                        tracing::warn!(error = %e, "cannot write an audit event to the audit file");
                    }
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = std::env::temp_dir().join(format!("drio-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let cfg = FileSink {
            path: path.clone(),
            max_bytes: 1024,
            keep: 2,
        };
        let mut f = RotatingFile::open(&cfg).unwrap();
        let line = [b'x'; 399]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        for _ in 0..10 {
            f.write_line(&line).unwrap();
        }
        for p in [path.clone(), f.rotated(1), f.rotated(2)] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= 1024 && len % 400 == 0, "{p:?}: {len}");
        }
        assert!(!f.rotated(3).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
