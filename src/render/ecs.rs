//! PLACEHOLDER: the ecs rendering is being written.

use super::File;
use crate::ecosystem::Ecosystem;

/// Settings of this rendering.
#[derive(Debug, Clone, clap::Args)]
pub struct EcsOptions {}

pub(super) fn render(
    _ecosystem: &Ecosystem,
    _options: &EcsOptions,
) -> Result<Vec<File>, crate::Error> {
    Err("not yet".into())
}
