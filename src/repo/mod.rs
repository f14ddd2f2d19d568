//! pacman's formats, the bottom layer: request/cache paths ([`path`]), version comparison
//! ([`vercmp`]), repo databases read ([`db`], [`db_index`]) and written ([`db_writer`]),
//! package archives ([`package`]), and the bounds for reading untrusted tars
//! ([`bounded_tar`]). Pure functions over bytes and files: nothing here knows about HTTP, the
//! cache or the config.

pub(crate) mod bounded_tar;
pub(crate) mod db;
pub(crate) mod db_index;
pub(crate) mod db_writer;
pub mod package;
pub mod path;
pub(crate) mod vercmp;
