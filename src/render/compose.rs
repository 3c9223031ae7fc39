//! PLACEHOLDER: the compose rendering is being written.

use super::File;
use crate::ecosystem::Ecosystem;

pub(super) fn render(
    _ecosystem: &Ecosystem,
    _out: &std::path::Path,
) -> Result<Vec<File>, crate::Error> {
    Err("not yet".into())
}
