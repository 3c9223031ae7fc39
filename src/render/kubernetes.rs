//! PLACEHOLDER: the kubernetes rendering is being written.

use super::File;
use crate::ecosystem::Ecosystem;

/// Settings of this rendering.
#[derive(Debug, Clone, clap::Args)]
pub struct KubernetesOptions {}

pub(super) fn render(
    _ecosystem: &Ecosystem,
    _options: &KubernetesOptions,
) -> Result<Vec<File>, crate::Error> {
    Err("not yet".into())
}
