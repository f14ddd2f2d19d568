//! A cache for the jobs' unit tests: a temp dir with its store and catalog, the index's view
//! of the cached files (chosen sizes and times; the package files themselves need not
//! exist), and repo dbs on disk, written as `repo-add` writes them
//! ([`crate::repo::db_writer`]) and read back through the catalog.

use std::sync::Arc;

use crate::cache::catalog::Catalog;
use crate::cache::index::FileInfo;
use crate::cache::store::Store;
use crate::repo::package::PackageMeta;

/// The directory key of the test repo: `arch/core/os/x86_64`.
pub const CORE: &str = "arch/core/os/x86_64";

/// A temp cache and what its index lists.
pub struct TestCache {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    pub files: Vec<(String, FileInfo)>,
}

/// A db entry: file name (`name-version-arch.pkg.tar.zst`) and size; its sha256 is
/// [`listed_sha256`].
pub struct Listed<'a>(pub &'a str, pub u64);

/// The sha256 (hex) a test db gives `file`.
pub fn listed_sha256(file: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(file.as_bytes()))
}

impl TestCache {
    pub fn new() -> TestCache {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        TestCache {
            dir,
            store,
            catalog: Arc::new(Catalog::default()),
            files: Vec::new(),
        }
    }

    /// The index lists `dir/name` with `size` bytes, modified and last served at
    /// `last_served` (Unix seconds).
    pub fn file(&mut self, dir: &str, name: &str, size: u64, last_served: u64) {
        let info = FileInfo {
            size,
            mtime: last_served,
            last_served,
            hits: 0,
        };
        self.files.push((format!("{dir}/{name}"), info));
    }

    /// A repo db `dir/db_name` (e.g. `core.db`) listing `packages`, on disk and in the index.
    pub fn db(&mut self, dir: &str, db_name: &str, packages: &[Listed]) {
        let metas: Vec<PackageMeta> = packages
            .iter()
            .map(|Listed(file, size)| {
                let p = crate::repo::vercmp::parse_pkg_filename(file).expect("package file name");
                PackageMeta {
                    filename: file.to_string(),
                    name: p.name,
                    version: p.version,
                    arch: p.arch,
                    csize: *size,
                    sha256: listed_sha256(file),
                    ..PackageMeta::default()
                }
            })
            .collect();
        let path = self.dir.path().join(dir).join(db_name);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        let file = std::fs::File::create(&path).expect("create db");
        crate::repo::db_writer::write_db(file, &metas.iter().collect::<Vec<_>>(), false)
            .expect("write db");
        let len = std::fs::metadata(&path).expect("db").len();
        self.file(dir, db_name, len, 0);
    }
}
