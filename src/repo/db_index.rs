//! One parsed repo db in memory: its entries, looked up by package file name and by name +
//! arch, and its malformed entries ([`crate::repo::db::Malformed`]), which stand for the
//! package files they were meant to describe ([`RepoIndex::listing`]).

use std::collections::HashMap;

use crate::repo::db::{DbEntry, ParsedDb};

/// What a db says about one package file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing<'a> {
    /// A readable entry lists it.
    Entry(&'a DbEntry),
    /// Its entry is malformed (the reason): the db lists the package, but not usably.
    Malformed(&'a str),
    /// The db does not list it.
    Unlisted,
}

/// Entries of one db with lookups by file name and by name + arch.
#[derive(Debug, Default)]
pub struct RepoIndex {
    entries: Vec<DbEntry>,
    by_filename: HashMap<String, usize>,
    by_name_arch: HashMap<(String, String), usize>,
    /// Malformed entries by `%FILENAME%` → reason.
    malformed: HashMap<String, String>,
    /// Malformed entries without a readable `%FILENAME%`: (`name-version` of the member,
    /// reason); they stand for every package file named `name-version-*`.
    malformed_stems: Vec<(String, String)>,
}

impl RepoIndex {
    #[cfg(test)]
    pub fn from_entries(entries: Vec<DbEntry>) -> RepoIndex {
        RepoIndex::from_parsed(ParsedDb {
            entries,
            malformed: Vec::new(),
        })
    }

    pub fn from_parsed(parsed: ParsedDb) -> RepoIndex {
        let entries = parsed.entries;
        let mut by_filename = HashMap::with_capacity(entries.len());
        let mut by_name_arch = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            by_filename.insert(e.filename.clone(), i);
            by_name_arch.insert((e.name.clone(), e.arch.clone()), i);
        }
        let mut malformed = HashMap::new();
        let mut malformed_stems = Vec::new();
        for m in parsed.malformed {
            match m.filename {
                Some(f) => {
                    malformed.insert(f, m.reason);
                }
                None => {
                    let stem = m.member.trim_end_matches("/desc").to_string();
                    malformed_stems.push((format!("{stem}-"), m.reason));
                }
            }
        }
        RepoIndex {
            entries,
            by_filename,
            by_name_arch,
            malformed,
            malformed_stems,
        }
    }

    pub fn by_filename(&self, f: &str) -> Option<&DbEntry> {
        self.by_filename.get(f).map(|&i| &self.entries[i])
    }

    /// What this db says about package file `f`.
    pub fn listing(&self, f: &str) -> Listing<'_> {
        if let Some(e) = self.by_filename(f) {
            return Listing::Entry(e);
        }
        if let Some(reason) = self.malformed.get(f) {
            return Listing::Malformed(reason);
        }
        match self
            .malformed_stems
            .iter()
            .find(|(stem, _)| f.starts_with(stem.as_str()))
        {
            Some((_, reason)) => Listing::Malformed(reason),
            None => Listing::Unlisted,
        }
    }

    pub fn by_name_arch(&self, name: &str, arch: &str) -> Option<&DbEntry> {
        self.by_name_arch
            .get(&(name.to_string(), arch.to_string()))
            .map(|&i| &self.entries[i])
    }

    pub fn entries(&self) -> &[DbEntry] {
        &self.entries
    }

    /// Malformed entries: (`%FILENAME%` or `name-version-` prefix, reason).
    pub fn malformed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.malformed
            .iter()
            .map(|(f, r)| (f.as_str(), r.as_str()))
            .chain(
                self.malformed_stems
                    .iter()
                    .map(|(s, r)| (s.as_str(), r.as_str())),
            )
    }
}
