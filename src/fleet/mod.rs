//! `thespian up`: a whole ecosystem on this machine, in one command. Every
//! replica of every service is a child process (this same binary, serving)
//! on a declared or free port, configured by environment alone as a
//! container would be. `up` prints where each one is, waits until all of
//! them say SERVING, drives the file's load, and stops them all gracefully
//! on Ctrl-C or SIGTERM, so their last spans are flushed.
//!
//! A child that dies while the others run is reported with its last lines;
//! the others keep running, since an ecosystem with a service down is still
//! worth watching, and `up` exits non-zero when it stops. A child that dies
//! before the ecosystem is ready stops it all at once.
//!
//! Its parts, one file each:
//!
//! - here: the command, and the fleet of running instances.
//! - `args`: its options.
//! - `plan`: ports and environments, chosen before anything starts.
//! - `child`: one running instance: its output, last lines and exit.
//! - `lifeline`: what makes every instance end with `up`, however `up` ends.

mod args;
mod child;
mod lifeline;
mod plan;

use std::{
    future::Future,
    io::IsTerminal as _,
    pin::Pin,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};

pub use self::{
    args::{Logs, UpArgs},
    lifeline::{STOP_ON_STDIN_EOF, or_stdin_closed},
};

use self::{
    child::{Exit, Running, Sink},
    plan::{Instance, Plan},
};
use crate::{
    ecosystem::Ecosystem,
    health,
    poke::{self, PokeArgs},
    telemetry::ResourceAttributes,
};

/// How long stragglers killed after the stop timeout have to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Runs the ecosystem `args.file` until `interrupt` completes, then stops
/// it. `attributes` are the resource attributes `up` was given, passed on
/// to every instance. Fails when the file is invalid, an instance cannot
/// start or become ready, or one died on the way.
pub async fn run(
    args: &UpArgs,
    attributes: &ResourceAttributes,
    interrupt: impl Future<Output = ()>,
) -> Result<(), crate::Error> {
    let started = Instant::now();
    let ecosystem = Ecosystem::from_file(&args.file)?;
    let scripts_dir = std::path::absolute(&ecosystem.scripts_dir)?;
    let mut plan = Plan::new(&ecosystem, &scripts_dir, attributes)?;
    let loads = loads(&ecosystem, &plan, args)?;
    if args.logs == Logs::Files {
        std::fs::create_dir_all(&args.log_dir)
            .map_err(|e| format!("cannot create {}: {e}", args.log_dir.display()))?;
    }
    plan.release();
    let mut fleet = Fleet::start(plan.instances, args)?;
    fleet.print_table();
    tokio::pin!(interrupt);
    let ready = tokio::select! {
        ready = fleet.wait_until_serving(args.ready_timeout) => ready,
        () = &mut interrupt => Err("stopped before every instance was ready".into()),
    };
    if let Err(e) = ready {
        fleet.stop(args.stop_timeout).await;
        return Err(e);
    }
    println!(
        "ready: {} instances of {} services SERVING in {:.2} s; Ctrl-C stops them all",
        fleet.instances.len(),
        ecosystem.services.len(),
        started.elapsed().as_secs_f64()
    );
    let (stop_load, load_stopped) = watch::channel(false);
    let pokes: Vec<_> = loads
        .into_iter()
        .map(|args| {
            let mut stopped = load_stopped.clone();
            println!(
                "load: {} {} at {}/s",
                args.address.as_deref().unwrap_or_default(),
                args.method.map_or("", |method| method.as_str()),
                args.rate.unwrap_or_default()
            );
            tokio::spawn(async move {
                let until = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                poke::drive(&args, until).await
            })
        })
        .collect();
    fleet.watch(interrupt.as_mut()).await;
    stop_load.send_replace(true);
    for poke in pokes {
        match poke.await {
            Ok(Ok(summary)) => {
                for line in summary.to_text().lines() {
                    println!("load: {line}");
                }
            }
            Ok(Err(e)) => eprintln!("load: {}", crate::explain(&*e)),
            Err(e) => eprintln!("load: {e}"),
        }
    }
    fleet.stop(args.stop_timeout).await;
    match fleet.crashed {
        0 => Ok(()),
        n => Err(format!("instances that exited while the ecosystem ran: {n}").into()),
    }
}

/// The file's load and `--poke`'s, each as a poke of a first replica that
/// runs until `up` stops.
fn loads(ecosystem: &Ecosystem, plan: &Plan, args: &UpArgs) -> Result<Vec<PokeArgs>, crate::Error> {
    let file = ecosystem
        .load
        .iter()
        .map(|load| (load.service.clone(), load.method, load.rate));
    let flags = args
        .pokes
        .iter()
        .map(|(service, method)| (service.clone(), *method, args.rate));
    file.chain(flags)
        .map(|(service, method, rate)| {
            let first = plan
                .instances
                .iter()
                .find(|i| i.service == service)
                .ok_or_else(|| format!("--poke: no service named `{service}` in this ecosystem"))?;
            Ok(PokeArgs {
                rate: Some(rate),
                duration: Some(Duration::MAX),
                quiet: true,
                ..PokeArgs::untraced(format!("http://127.0.0.1:{}", first.port), method)
            })
        })
        .collect()
}

/// The running instances, and what `up` knows of them.
struct Fleet {
    /// What was started, in the plan's order.
    instances: Vec<Instance>,
    /// The processes, in the same order.
    running: Vec<Running>,
    /// Where each one's output goes, for the table.
    sinks: Vec<Sink>,
    /// Which have not exited yet.
    alive: Vec<bool>,
    /// Exits, as they happen.
    exits: mpsc::UnboundedReceiver<Exit>,
    /// How many exited before they were told to stop.
    crashed: usize,
}

impl Fleet {
    /// Starts every instance; if one cannot start, stops those started.
    fn start(instances: Vec<Instance>, args: &UpArgs) -> Result<Fleet, crate::Error> {
        let exe = std::env::current_exe()?;
        let (exited, exits) = mpsc::unbounded_channel();
        let sinks = sinks(&instances, args);
        let mut fleet = Fleet {
            alive: Vec::with_capacity(instances.len()),
            running: Vec::with_capacity(instances.len()),
            sinks,
            instances,
            exits,
            crashed: 0,
        };
        // Spawned here, on the thread that runs `up`'s main future and
        // lives as long as `up`: the death signal follows that thread.
        for (index, instance) in fleet.instances.iter().enumerate() {
            let sink = fleet.sinks[index].clone();
            match Running::start(&exe, index, instance, sink, exited.clone()) {
                Ok(running) => {
                    fleet.running.push(running);
                    fleet.alive.push(true);
                }
                Err(e) => {
                    for running in &fleet.running {
                        running.kill();
                    }
                    return Err(format!("cannot start {}: {e}", instance.label).into());
                }
            }
        }
        Ok(fleet)
    }

    /// Prints where every instance listens, its process and its log.
    fn print_table(&self) {
        let mut rows = vec![[
            "SERVICE".to_owned(),
            "REPLICA".to_owned(),
            "ADDRESS".to_owned(),
            "PID".to_owned(),
            "LOG".to_owned(),
        ]];
        for ((instance, running), sink) in self.instances.iter().zip(&self.running).zip(&self.sinks)
        {
            rows.push([
                instance.service.clone(),
                instance.replica.to_string(),
                format!("http://127.0.0.1:{}", instance.port),
                running.pid.to_string(),
                match sink {
                    Sink::Prefixed(_) => format!("stdout, as {}", instance.label),
                    Sink::File(path) => path.display().to_string(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..5)
            .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
            .collect();
        let mut table = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            table.push_str(cells.join("  ").trim_end());
            table.push('\n');
        }
        // One write, so no instance's output lands inside the table.
        print!("{table}");
    }

    /// Waits until every instance says SERVING, all asked at once, for at
    /// most `timeout`; fails naming those that did not, or the first that
    /// exited meanwhile.
    async fn wait_until_serving(&mut self, timeout: Duration) -> Result<(), crate::Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let probes = futures::future::join_all(
            self.instances
                .iter()
                .map(|instance| until_serving(instance.port, deadline)),
        );
        let answers = tokio::select! {
            answers = probes => answers,
            Some(exit) = self.exits.recv() => {
                let label = self.instances[exit.index].label.clone();
                self.exited(exit);
                return Err(format!("{label} exited before the ecosystem was ready").into());
            }
        };
        let unready: Vec<String> = self
            .instances
            .iter()
            .zip(answers)
            .filter_map(|(instance, answer)| {
                answer.err().map(|e| format!("{} ({e})", instance.label))
            })
            .collect();
        if unready.is_empty() {
            Ok(())
        } else {
            Err(format!("not SERVING within {timeout:?}: {}", unready.join(", ")).into())
        }
    }

    /// Runs until `interrupt` completes or every instance has exited,
    /// reporting each exit on the way.
    async fn watch(&mut self, mut interrupt: Pin<&mut impl Future<Output = ()>>) {
        while self.alive.contains(&true) {
            tokio::select! {
                () = &mut interrupt => return,
                Some(exit) = self.exits.recv() => self.exited(exit),
            }
        }
        eprintln!("every instance has exited");
    }

    /// Notes an instance's unexpected exit, and reports it with its last
    /// lines.
    fn exited(&mut self, exit: Exit) {
        self.alive[exit.index] = false;
        self.crashed += 1;
        let instance = &self.instances[exit.index];
        let status = match &exit.status {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "{} (pid {}) exited: {status}; its last lines:",
            instance.label, self.running[exit.index].pid
        );
        for line in &exit.last_lines {
            eprintln!("  {line}");
        }
    }

    /// Tells every instance still running to shut down gracefully, waits up
    /// to `timeout`, then kills those left.
    async fn stop(&mut self, timeout: Duration) {
        let started = Instant::now();
        for (running, _) in self
            .running
            .iter()
            .zip(&self.alive)
            .filter(|(_, alive)| **alive)
        {
            running.terminate();
        }
        let stopped = self.reap(timeout).await;
        let stragglers: Vec<usize> = (0..self.alive.len()).filter(|i| self.alive[*i]).collect();
        for &index in &stragglers {
            eprintln!(
                "{} did not stop within {timeout:?}: killed",
                self.instances[index].label
            );
            self.running[index].kill();
        }
        self.reap(KILL_WAIT).await;
        println!(
            "stopped {stopped} instances in {:.2} s{}",
            started.elapsed().as_secs_f64(),
            if stragglers.is_empty() {
                String::new()
            } else {
                format!(", killed {}", stragglers.len())
            }
        );
    }

    /// Notes the exits of instances told to stop, for at most `timeout`;
    /// returns how many exited.
    async fn reap(&mut self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reaped = 0;
        while self.alive.contains(&true) {
            let Ok(Some(exit)) = tokio::time::timeout_at(deadline, self.exits.recv()).await else {
                break;
            };
            self.alive[exit.index] = false;
            reaped += 1;
            match exit.status {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("{} stopped: {status}", self.instances[exit.index].label),
                Err(e) => eprintln!("{}: {e}", self.instances[exit.index].label),
            }
        }
        reaped
    }
}

/// Where each instance's output goes: its prefix on stdout, coloured when
/// stdout is a terminal, or its file.
fn sinks(instances: &[Instance], args: &UpArgs) -> Vec<Sink> {
    const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];
    let width = instances.iter().map(|i| i.label.len()).max().unwrap_or(0);
    let colour = std::io::stdout().is_terminal();
    instances
        .iter()
        .enumerate()
        .map(|(index, instance)| match args.logs {
            Logs::Files => Sink::File(args.log_dir.join(format!("{}.log", instance.label))),
            Logs::Prefixed if colour => Sink::Prefixed(format!(
                "\x1b[{}m{:<width$} |\x1b[0m ",
                COLOURS[index % COLOURS.len()],
                instance.label
            )),
            Logs::Prefixed => Sink::Prefixed(format!("{:<width$} | ", instance.label)),
        })
        .collect()
}

/// Asks the instance on `port` whether it is SERVING until it is, more and
/// more slowly, until `deadline`; fails with the last answer.
async fn until_serving(port: u16, deadline: tokio::time::Instant) -> Result<(), String> {
    let address = format!("http://127.0.0.1:{port}");
    let mut pause = Duration::from_millis(5);
    loop {
        let answer = match tokio::time::timeout_at(deadline, health::serving(&address)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => crate::explain(&*e),
            Err(_) => "no answer".to_owned(),
        };
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(answer);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
