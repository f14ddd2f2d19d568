//! Write pacman repo databases the way `repo-add` does: a gzip'd tar of `name-version/desc`
//! (and, in the `.files` db, `name-version/files`) members with `%SECTION%` blocks in
//! repo-add's order; empty sections are left out.

use std::io::Write;

use crate::repo::package::PackageMeta;

fn section(out: &mut String, name: &str, values: &[&str]) {
    let values: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return;
    }
    out.push('%');
    out.push_str(name);
    out.push_str("%\n");
    for v in values {
        out.push_str(v);
        out.push('\n');
    }
    out.push('\n');
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `desc` member of a package, byte for byte as `repo-add` writes it.
pub fn desc(p: &PackageMeta) -> String {
    let mut o = String::new();
    let csize = p.csize.to_string();
    let isize = p.isize.to_string();
    section(&mut o, "FILENAME", &[&p.filename]);
    section(&mut o, "NAME", &[&p.name]);
    section(&mut o, "BASE", &[&p.base]);
    section(&mut o, "VERSION", &[&p.version]);
    section(&mut o, "DESC", &[&p.desc]);
    section(&mut o, "GROUPS", &strs(&p.groups));
    section(&mut o, "CSIZE", &[&csize]);
    section(&mut o, "ISIZE", &[&isize]);
    section(&mut o, "MD5SUM", &[&p.md5]);
    section(&mut o, "SHA256SUM", &[&p.sha256]);
    section(&mut o, "PGPSIG", &[p.pgpsig.as_deref().unwrap_or("")]);
    section(&mut o, "URL", &[&p.url]);
    section(&mut o, "LICENSE", &strs(&p.license));
    section(&mut o, "ARCH", &[&p.arch]);
    section(&mut o, "BUILDDATE", &[&p.builddate]);
    section(&mut o, "PACKAGER", &[&p.packager]);
    section(&mut o, "REPLACES", &strs(&p.replaces));
    section(&mut o, "CONFLICTS", &strs(&p.conflicts));
    section(&mut o, "PROVIDES", &strs(&p.provides));
    section(&mut o, "DEPENDS", &strs(&p.depends));
    section(&mut o, "OPTDEPENDS", &strs(&p.optdepends));
    section(&mut o, "MAKEDEPENDS", &strs(&p.makedepends));
    section(&mut o, "CHECKDEPENDS", &strs(&p.checkdepends));
    o
}

/// The `files` member of a package (`.files` db only).
pub fn files(p: &PackageMeta) -> String {
    let mut o = String::from("%FILES%\n");
    for f in &p.files {
        o.push_str(f);
        o.push('\n');
    }
    o
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mtime: u64,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
}

/// Write a gzip'd db of `packages` (sorted by name) to `out` (buffered here); `with_files`
/// makes a `.files` db. Where it goes and how durably is the caller's business.
pub fn write_db(
    out: impl Write,
    packages: &[&PackageMeta],
    with_files: bool,
) -> std::io::Result<()> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut sorted: Vec<&&PackageMeta> = packages.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for p in sorted {
        let dir = format!("{}-{}", p.name, p.version);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(mtime);
        h.set_size(0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
        append(&mut tar, &format!("{dir}/desc"), desc(p).as_bytes(), mtime)?;
        if with_files {
            append(
                &mut tar,
                &format!("{dir}/files"),
                files(p).as_bytes(),
                mtime,
            )?;
        }
    }
    let gz = tar.into_inner()?;
    let mut buf = gz.finish()?;
    buf.flush()
}
