//! Writes an ecosystem out for the platform a user runs it on: Docker
//! Compose, Kubernetes (kustomize-ready) or AWS ECS (CloudFormation). The
//! files are complete as they are, and `--check` says whether committed
//! files still match what the ecosystem renders to.
//!
//! Its parts, one file each:
//!
//! - here: the command, and writing or checking the rendered files.
//! - `compose`: a Compose file that includes the observability stack.
//! - `kubernetes`: a kustomize base of ConfigMaps, Deployments and Services.
//! - `ecs`: a CloudFormation template for Fargate with Service Connect.

mod compose;
mod ecs;
mod kubernetes;

use std::path::{Path, PathBuf};

use crate::ecosystem::Ecosystem;

/// `thespian render`: an ecosystem file, rendered for one platform.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The ecosystem file to render.
    pub file: PathBuf,
    /// The platform to render for.
    #[arg(long = "to", value_enum)]
    pub target: Target,
    /// The folder to write the files to.
    #[arg(long)]
    pub out: PathBuf,
    /// Write nothing: fail when the folder's files differ from a fresh
    /// rendering, as CI does for the committed samples.
    #[arg(long)]
    pub check: bool,
    /// Settings of the Kubernetes rendering.
    #[command(flatten)]
    pub kubernetes: kubernetes::KubernetesOptions,
    /// Settings of the ECS rendering.
    #[command(flatten)]
    pub ecs: ecs::EcsOptions,
}

/// A platform an ecosystem can be rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Docker Compose, with the observability stack.
    Compose,
    /// Kubernetes, as a kustomize base.
    Kubernetes,
    /// AWS ECS on Fargate, as CloudFormation.
    Ecs,
}

/// One rendered file: where it goes under the output folder, and what it
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative to the output folder.
    pub path: PathBuf,
    /// Its text.
    pub contents: String,
}

/// Renders the ecosystem `args` names, then writes or checks the files.
pub fn run(args: &RenderArgs) -> Result<(), crate::Error> {
    let ecosystem = Ecosystem::from_file(&args.file)?;
    let files = render(&ecosystem, args)?;
    if args.check {
        check(&files, &args.out)
    } else {
        write(&files, &args.out)
    }
}

/// The files `ecosystem` renders to for the platform `args` names.
pub fn render(ecosystem: &Ecosystem, args: &RenderArgs) -> Result<Vec<File>, crate::Error> {
    match args.target {
        Target::Compose => compose::render(ecosystem, &args.out),
        Target::Kubernetes => kubernetes::render(ecosystem, &args.kubernetes),
        Target::Ecs => ecs::render(ecosystem, &args.ecs),
    }
}

/// Writes `files` under `out`, making folders as needed.
fn write(files: &[File], out: &Path) -> Result<(), crate::Error> {
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Fails, naming each, when a file under `out` is missing or differs from
/// its fresh rendering.
fn check(files: &[File], out: &Path) -> Result<(), crate::Error> {
    let stale: Vec<String> = files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(out.join(&file.path))
                .ok()
                .as_deref()
                != Some(file.contents.as_str())
        })
        .map(|file| out.join(&file.path).display().to_string())
        .collect();
    if stale.is_empty() {
        println!("{}: {} files up to date", out.display(), files.len());
        Ok(())
    } else {
        Err(format!(
            "these files differ from a fresh rendering (render again without --check): {}",
            stale.join(", ")
        )
        .into())
    }
}
