//! Placeholder: pacman vercmp (being written).
