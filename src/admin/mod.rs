//! The `/_pkgstash/` face: routes ([`routes`]), the admin token check ([`auth`]), the status
//! snapshot ([`status`]) and the AUR build server's endpoints ([`aur`]).

pub mod aur;
pub(crate) mod auth;
pub mod routes;
pub(crate) mod status;
