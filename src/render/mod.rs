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
//! - `telemetry`: the collector, and the in-cluster stack, on Kubernetes.
//! - `yaml`: writing values out as YAML, keys in the order they were made.

mod compose;
mod ecs;
mod kubernetes;
mod telemetry;
mod yaml;

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path, PathBuf},
};

use crate::ecosystem::{Ecosystem, Load, Peer, Service};

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
    /// Settings of the Compose rendering.
    #[command(flatten)]
    pub compose: compose::ComposeOptions,
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
        Target::Compose => compose::render(ecosystem, args),
        Target::Kubernetes => kubernetes::render(ecosystem, args),
        Target::Ecs => ecs::render(ecosystem, args),
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

impl RenderArgs {
    /// The command that renders these files, for their header: the file,
    /// the target, the folder and `flags`, the target's own options that
    /// differ from their defaults; wrapped, with `\` at each break, to
    /// keep lines short.
    fn command_line(&self, comment: &str, flags: &[String]) -> String {
        let target = clap::ValueEnum::to_possible_value(&self.target)
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default();
        let words = [
            format!("thespian render {}", self.file.display()),
            format!("--to {target}"),
            format!("--out {}", self.out.display()),
        ];
        let mut text = format!("{comment}   ");
        let mut line_start = 0;
        for (i, word) in words.iter().chain(flags).enumerate() {
            if i > 0 {
                if text.len() - line_start + word.len() + 3 > HEADER_WIDTH {
                    text.push_str(" \\\n");
                    line_start = text.len();
                    text.push_str(&format!("{comment}     "));
                } else {
                    text.push(' ');
                }
            }
            text.push_str(word);
        }
        text
    }

    /// The header of every rendered file that can hold a comment: where it
    /// came from, and how to make it again. `comment` starts each line.
    fn header(&self, comment: &str, flags: &[String]) -> String {
        format!(
            "{comment} Rendered from {} by\n{}\n{comment} Edit the ecosystem file and render again, rather than editing this file.\n",
            self.file.display(),
            self.command_line(comment, flags)
        )
    }
}

/// The widest a header's line of the command grows before it breaks.
const HEADER_WIDTH: usize = 100;

/// The names of the services `service` calls, in name order.
fn callees(ecosystem: &Ecosystem, service: &Service) -> BTreeSet<String> {
    let called = RefCell::new(BTreeSet::new());
    ecosystem.config(service, &|peer: &Service| {
        called.borrow_mut().insert(peer.name.clone());
        Peer::container(&peer.name)
    });
    called.into_inner()
}

/// For each service, the callees it can wait for before it starts: every
/// one, except where waiting would close a circle (orders calls payments
/// calls orders), when neither could ever start.
fn start_order(ecosystem: &Ecosystem) -> BTreeMap<String, Vec<String>> {
    let calls: BTreeMap<String, BTreeSet<String>> = ecosystem
        .services
        .iter()
        .map(|service| (service.name.clone(), callees(ecosystem, service)))
        .collect();
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(name) = stack.pop() {
            if name == to {
                return true;
            }
            if seen.insert(name.clone()) {
                stack.extend(calls.get(&name).into_iter().flatten().cloned());
            }
        }
        false
    };
    calls
        .iter()
        .map(|(name, callees)| {
            let waits = callees
                .iter()
                .filter(|callee| !reaches(callee, name))
                .cloned()
                .collect();
            (name.clone(), waits)
        })
        .collect()
}

/// The ecosystem's load, each with the name of the poker that makes it:
/// `poker` alone, else `poker-1`, `poker-2`… in the file's order.
fn pokers(ecosystem: &Ecosystem) -> Result<Vec<(String, &Load)>, crate::Error> {
    let named: Vec<(String, &Load)> = match ecosystem.load.as_slice() {
        [only] => vec![("poker".to_owned(), only)],
        many => many
            .iter()
            .enumerate()
            .map(|(i, load)| (format!("poker-{}", i + 1), load))
            .collect(),
    };
    let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
    refuse_taken(
        ecosystem,
        &names,
        "the poker that makes the ecosystem's load",
    )?;
    Ok(named)
}

/// Refuses a service named like one of `taken`, names the rendering gives
/// things of its own (`what`), which would clash with it.
fn refuse_taken(ecosystem: &Ecosystem, taken: &[&str], what: &str) -> Result<(), crate::Error> {
    match ecosystem
        .services
        .iter()
        .find(|s| taken.contains(&s.name.as_str()))
    {
        Some(service) => Err(format!(
            "the service `{}` has the name of {what}: rename the service",
            service.name
        )
        .into()),
        None => Ok(()),
    }
}

/// An instance's variables: the platform's `defaults` in their order, each
/// replaced in place by the service's own value when it sets one, then the
/// service's others, so no variable is listed twice.
fn environment(service: &Service, defaults: Vec<(&str, String)>) -> Vec<(String, String)> {
    let mut own = service.environment();
    let mut env: Vec<(String, String)> = defaults
        .into_iter()
        .map(|(key, value)| {
            let value = own.remove(key).unwrap_or(value);
            (key.to_owned(), value)
        })
        .collect();
    env.extend(own);
    env
}

/// The arguments of `thespian poke` that make `load` against its service.
fn poke_args(load: &Load) -> Vec<String> {
    [
        "poke".to_owned(),
        Peer::container(&load.service).url(),
        load.method.to_string(),
        "--rate".to_owned(),
        load.rate.to_string(),
        // A day a run, and the platform starts the next.
        "--duration".to_owned(),
        "24h".to_owned(),
    ]
    .into()
}

/// `to` as a path from the folder `from`, both taken from the working
/// folder and compared by their names alone, as Compose resolves paths.
fn relative(from: &Path, to: &Path) -> Result<PathBuf, crate::Error> {
    let from = normal(from)?;
    let to = normal(to)?;
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut path: PathBuf =
        std::iter::repeat_n(Component::ParentDir, from.components().count() - common).collect();
    path.extend(to.components().skip(common));
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    Ok(path)
}

/// `path` made absolute, with `.` and `..` taken out by name.
fn normal(path: &Path) -> Result<PathBuf, crate::Error> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("cannot find {}: {e}", path.display()))?;
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    Ok(normal)
}

#[cfg(test)]
mod tests;
