//! Placeholder: parse pacman repo databases (being written).
