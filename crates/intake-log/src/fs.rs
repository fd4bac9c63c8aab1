//! The file-system seam.
//!
//! The log does all its I/O through [`Filesystem`] and [`FileHandle`], so
//! tests can swap the real disk ([`StdFilesystem`]) for
//! [`MemoryFilesystem`], which remembers what was synced, can "crash"
//! (forget everything that was not), and can fail writes and fsyncs on
//! demand. That is how the durability rules are tested without pulling plugs.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;

/// An open file: positional reads and writes, so readers and the writer
/// never share a cursor.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `pos`.
    ///
    /// # Errors
    /// `UnexpectedEof` when the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Writes all of `buf` at `pos`.
    ///
    /// # Errors
    /// Any OS error; part of `buf` may have been written.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    ///
    /// # Errors
    /// Any OS error; after one, the state of unsynced data is unknown.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes data and metadata durable (fsync).
    ///
    /// # Errors
    /// As [`FileHandle::sync_data`].
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    ///
    /// # Errors
    /// Any OS error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current size.
    ///
    /// # Errors
    /// Any OS error.
    fn len(&self) -> io::Result<u64>;
    /// True when the file holds no bytes.
    ///
    /// # Errors
    /// Any OS error.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Directory operations the log needs.
pub trait Filesystem: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents.
    ///
    /// # Errors
    /// Any OS error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory (full paths), in no particular order.
    ///
    /// # Errors
    /// Any OS error.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Creates a new file for reading and writing; fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists`, or any OS error.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Opens an existing file for reading and writing.
    ///
    /// # Errors
    /// `NotFound`, or any OS error.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Renames a file, replacing the target.
    ///
    /// # Errors
    /// Any OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// Any OS error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable.
    ///
    /// # Errors
    /// Any OS error.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// When a file was last written.
    ///
    /// # Errors
    /// Any OS error.
    fn modified(&self, path: &Path) -> io::Result<SystemTime>;
}

/// Reads a whole (small) file.
pub(crate) fn read_whole(fs: &dyn Filesystem, path: &Path) -> io::Result<Vec<u8>> {
    let file = fs.open(path)?;
    let len = usize::try_from(file.len()?).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Replaces `path` atomically: write a temporary file, fsync it, rename it
/// over `path`, fsync the directory.
pub(crate) fn write_atomic(fs: &dyn Filesystem, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs.remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = fs.create_new(&tmp)?;
    file.write_all_at(bytes, 0)?;
    file.sync_all()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFilesystem;

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Filesystem for StdFilesystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // `Path::new("data").parent()` is the empty path: the current directory.
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        File::open(path)?.sync_all()
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        std::fs::metadata(path)?.modified()
    }
}

/// An in-memory file system that models durability.
///
/// A file's durable content is what it held at its last `sync_data`; a
/// directory entry is durable once its directory was synced after the entry
/// was made. [`MemoryFilesystem::crash`] returns the file system a machine
/// would find after power loss. Faults: [`MemoryFilesystem::fail_syncs`]
/// makes every following fsync fail, [`MemoryFilesystem::set_capacity`]
/// makes writes past a total size fail with `StorageFull`.
#[derive(Debug, Clone, Default)]
pub struct MemoryFilesystem {
    state: Arc<Mutex<MemState>>,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_syncs: std::sync::atomic::AtomicBool,
    /// Total bytes all files may hold; `u64::MAX` for no limit.
    capacity: AtomicU64,
    /// fsyncs of files (not directories) that succeeded.
    syncs: AtomicU64,
    /// Microseconds every file fsync takes.
    sync_delay_us: AtomicU64,
    /// Writes that grow files under this directory fail with
    /// `StorageFull`.
    full_under: Mutex<Option<PathBuf>>,
}

#[derive(Debug, Default)]
struct MemState {
    live: HashMap<PathBuf, Arc<MemFile>>,
    durable: HashMap<PathBuf, Arc<MemFile>>,
    dirs: Vec<PathBuf>,
}

#[derive(Debug, Default)]
struct MemFileData {
    bytes: Vec<u8>,
    synced: Vec<u8>,
    modified: Option<SystemTime>,
}

#[derive(Debug)]
struct MemFile {
    /// Where the file was made (a rename does not move it here; the
    /// path-scoped fault follows the name a file was created with).
    path: PathBuf,
    data: Mutex<MemFileData>,
    faults: Arc<Faults>,
    /// The owning file system, for the capacity check (weak: no cycle).
    state: std::sync::Weak<Mutex<MemState>>,
}

impl MemFile {
    fn new(fs: &MemoryFilesystem, path: &Path, data: MemFileData) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            data: Mutex::new(data),
            faults: Arc::clone(&fs.faults),
            state: Arc::downgrade(&fs.state),
        })
    }

    fn used_bytes(&self) -> u64 {
        let Some(state) = self.state.upgrade() else {
            return 0;
        };
        let files: Vec<_> = state.lock().live.values().cloned().collect();
        files.iter().map(|f| f.data.lock().bytes.len() as u64).sum()
    }

    fn sync_fault(&self) -> io::Result<()> {
        sync_fault(&self.faults)
    }
}

fn sync_fault(faults: &Faults) -> io::Result<()> {
    if faults.fail_syncs.load(Ordering::SeqCst) {
        Err(io::Error::other("injected fsync failure"))
    } else {
        Ok(())
    }
}

impl MemoryFilesystem {
    /// An empty file system with no faults.
    pub fn new() -> Self {
        let fs = Self::default();
        fs.faults.capacity.store(u64::MAX, Ordering::SeqCst);
        fs
    }

    /// What survives a power loss now: synced data under synced names.
    /// `keep_unsynced(path, unsynced_len)` says how many bytes past the
    /// synced content of each file also reached the disk (a torn write).
    pub fn crash_with(&self, mut keep_unsynced: impl FnMut(&Path, usize) -> usize) -> Self {
        let state = self.state.lock();
        let out = Self::new();
        {
            let mut new_state = out.state.lock();
            new_state.dirs = state.dirs.clone();
            for (path, file) in &state.durable {
                let data = file.data.lock();
                let mut bytes = data.synced.clone();
                if data.bytes.len() > bytes.len() && data.bytes.starts_with(&bytes) {
                    let extra = data.bytes.len() - bytes.len();
                    let keep = keep_unsynced(path, extra).min(extra);
                    bytes.extend_from_slice(
                        data.bytes
                            .get(data.synced.len()..data.synced.len() + keep)
                            .unwrap_or_default(),
                    );
                }
                let f = MemFile::new(
                    &out,
                    path,
                    MemFileData {
                        synced: bytes.clone(),
                        bytes,
                        modified: data.modified,
                    },
                );
                new_state.live.insert(path.clone(), Arc::clone(&f));
                new_state.durable.insert(path.clone(), f);
            }
        }
        out
    }

    /// What survives a power loss now, keeping only synced data.
    pub fn crash(&self) -> Self {
        self.crash_with(|_, _| 0)
    }

    /// From now on every fsync fails (`true`) or succeeds (`false`).
    pub fn fail_syncs(&self, fail: bool) {
        self.faults.fail_syncs.store(fail, Ordering::SeqCst);
    }

    /// Limits the total bytes of all files; writes past it fail with
    /// `StorageFull` and write nothing.
    pub fn set_capacity(&self, bytes: u64) {
        self.faults.capacity.store(bytes, Ordering::SeqCst);
    }

    /// From now on, writes that grow a file under `dir` fail with
    /// `StorageFull` (`None` lifts the fault): one partition's disk is
    /// full while the others, and the journal, are not.
    pub fn set_full_under(&self, dir: Option<PathBuf>) {
        *self.faults.full_under.lock() = dir;
    }

    /// Makes every file fsync take this long (like a slow disk).
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.faults
            .sync_delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// How many file fsyncs have succeeded so far.
    pub fn sync_count(&self) -> u64 {
        self.faults.syncs.load(Ordering::SeqCst)
    }

    /// The current content of a file, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let file = self.state.lock().live.get(path).cloned()?;
        let bytes = file.data.lock().bytes.clone();
        Some(bytes)
    }

    /// Replaces a file's content, synced (for corruption tests).
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        if let Some(file) = self.state.lock().live.get(path).cloned() {
            let mut data = file.data.lock();
            data.synced = bytes.clone();
            data.bytes = bytes;
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl FileHandle for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let data = self.data.lock();
        let start = usize::try_from(pos).map_err(io::Error::other)?;
        let src = data
            .bytes
            .get(start..start.saturating_add(buf.len()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let start = usize::try_from(pos).map_err(io::Error::other)?;
        let end = start.saturating_add(buf.len());
        let current = self.data.lock().bytes.len();
        let growth = end.saturating_sub(current) as u64;
        if growth > 0 {
            let capacity = self.faults.capacity.load(Ordering::SeqCst);
            let full_here = self
                .faults
                .full_under
                .lock()
                .as_ref()
                .is_some_and(|dir| self.path.starts_with(dir));
            if full_here || self.used_bytes().saturating_add(growth) > capacity {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected: no space left",
                ));
            }
        }
        let mut data = self.data.lock();
        if data.bytes.len() < end {
            data.bytes.resize(end, 0);
        }
        if let Some(dst) = data.bytes.get_mut(start..end) {
            dst.copy_from_slice(buf);
        }
        data.modified = Some(SystemTime::now());
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_fault()?;
        let delay = self.faults.sync_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        let mut data = self.data.lock();
        data.synced = data.bytes.clone();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut data = self.data.lock();
        data.bytes.resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().bytes.len() as u64)
    }
}

impl Filesystem for MemoryFilesystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        for dir in path.ancestors() {
            if !state.dirs.iter().any(|d| d == dir) {
                state.dirs.push(dir.to_path_buf());
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.state.lock();
        if !state.dirs.iter().any(|d| d == path) {
            return Err(not_found(path));
        }
        let mut out: Vec<PathBuf> = state
            .live
            .keys()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        out.extend(
            state
                .dirs
                .iter()
                .filter(|d| d.parent() == Some(path))
                .cloned(),
        );
        Ok(out)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut state = self.state.lock();
        if state.live.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let parent = path.parent().unwrap_or(Path::new(""));
        if !state.dirs.iter().any(|d| d == parent) {
            return Err(not_found(parent));
        }
        let file = MemFile::new(
            self,
            path,
            MemFileData {
                modified: Some(SystemTime::now()),
                ..MemFileData::default()
            },
        );
        state.live.insert(path.to_path_buf(), Arc::clone(&file));
        Ok(file)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let state = self.state.lock();
        let file = state
            .live
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        Ok(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let file = state.live.remove(from).ok_or_else(|| not_found(from))?;
        state.live.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state
            .live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        sync_fault(&self.faults)?;
        let mut state = self.state.lock();
        let MemState { live, durable, .. } = &mut *state;
        durable.retain(|p, _| p.parent() != Some(path) || live.contains_key(p));
        for (p, f) in live.iter() {
            if p.parent() == Some(path) {
                durable.insert(p.clone(), Arc::clone(f));
            }
        }
        Ok(())
    }

    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        let file = self
            .state
            .lock()
            .live
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        let modified = file.data.lock().modified.unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(modified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_data_and_names() {
        let fs = MemoryFilesystem::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let a = fs.create_new(&dir.join("a")).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let b = fs.create_new(&dir.join("b")).unwrap();
        b.write_all_at(b"lost", 0).unwrap();
        b.sync_data().unwrap(); // data synced, but the name never was

        let after = fs.crash();
        assert_eq!(after.contents(&dir.join("a")).unwrap(), b"hello");
        assert!(after.contents(&dir.join("b")).is_none());

        let torn = fs.crash_with(|_, extra| extra / 2);
        assert_eq!(torn.contents(&dir.join("a")).unwrap(), b"hello wo");
    }

    #[test]
    fn capacity_refuses_growth() {
        let fs = MemoryFilesystem::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.create_new(Path::new("/d/f")).unwrap();
        fs.set_capacity(4);
        f.write_all_at(b"abcd", 0).unwrap();
        let err = f.write_all_at(b"e", 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.len().unwrap(), 4);
    }

    #[test]
    fn write_atomic_replaces() {
        let fs = MemoryFilesystem::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        write_atomic(&fs, Path::new("/d/x"), b"one").unwrap();
        write_atomic(&fs, Path::new("/d/x"), b"two").unwrap();
        assert_eq!(read_whole(&fs, Path::new("/d/x")).unwrap(), b"two");
        assert_eq!(fs.crash().contents(Path::new("/d/x")).unwrap(), b"two");
        assert!(fs.contents(Path::new("/d/x.tmp")).is_none());
    }
}
