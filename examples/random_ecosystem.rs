//! Writes an ecosystem file of COUNT random services, so that the
//! renderings are checked on more than the one sample ecosystem:
//! `scripts/validate.sh` renders what this prints for every platform and
//! validates it as it does the sample.
//!
//! `cargo run --example random_ecosystem -- COUNT SEED SCRIPTS_DIR`
//!
//! The same COUNT and SEED print the same file. Services call services
//! after them (and the last calls the first, so that one call goes round
//! in a circle), by configured `CallService` or by the repository's
//! `fanout_aggregator.rhai`; some have several replicas, a version,
//! environment or a declared port; the first two take steady load.

use std::fmt::Write;

/// A small, seeded generator (SplitMix64): the same seed, the same file.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, seed, scripts] = args.as_slice() else {
        eprintln!("usage: random_ecosystem COUNT SEED SCRIPTS_DIR");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let seed: u64 = seed.parse().expect("SEED is a number");
    assert!(count >= 2, "COUNT is at least 2");
    print!("{}", ecosystem(count, seed, scripts));
}

/// The ecosystem file's text.
fn ecosystem(count: usize, seed: u64, scripts: &str) -> String {
    let mut random = Random(seed);
    let name = |i: usize| format!("svc-{i:02}");
    let mut out = format!(
        "# {count} random services (seed {seed}), made by examples/random_ecosystem.rs.\nname: random\nscripts_dir: {scripts}\nservices:\n"
    );
    for i in 0..count {
        let later: Vec<usize> = (i + 1..count).collect();
        let callee = |random: &mut Random| match later.as_slice() {
            [] => 0,
            later => later[random.below(later.len())],
        };
        writeln!(out, "  - name: {}", name(i)).unwrap();
        if random.below(3) == 0 {
            writeln!(out, "    replicas: {}", 2 + random.below(3)).unwrap();
        } else if random.below(2) == 0 {
            writeln!(out, "    port: {}", 7000 + i).unwrap();
        }
        if random.below(2) == 0 {
            writeln!(
                out,
                "    version: \"1.{}.{}\"",
                random.below(10),
                random.below(10)
            )
            .unwrap();
        }
        if random.below(4) == 0 {
            writeln!(out, "    env: {{ RUST_LOG: debug }}").unwrap();
        }
        if random.below(4) == 0 && !later.is_empty() {
            let peer = name(callee(&mut random));
            writeln!(
                out,
                "    grpc_method_a:\n      tracing_name: fan out\n      script: fanout_aggregator.rhai\n      params: {{ database: {{ service: {peer} }} }}"
            )
            .unwrap();
        } else {
            out.push_str(&method("a", &mut random, &|r| name(callee(r))));
        }
        out.push_str(&method("b", &mut random, &|r| name(callee(r))));
        let last = i + 1 == count;
        out.push_str(&method("c", &mut random, &|r| {
            if last { name(0) } else { name(callee(r)) }
        }));
    }
    writeln!(
        out,
        "load:\n  - {{ service: {}, method: A, rate: 2 }}\n  - {{ service: {}, method: B, rate: 0.5 }}",
        name(0),
        name(1)
    )
    .unwrap();
    out
}

/// A configured method: a sleep, perhaps a call to the peer `pick` names,
/// perhaps two sleeps at once.
fn method(letter: &str, random: &mut Random, pick: &dyn Fn(&mut Random) -> String) -> String {
    let mut text = format!(
        "    grpc_method_{letter}:\n      tracing_name: work {letter}\n      operations:\n        - Action: {{ Sleep: {{ tracing_name: think, duration_ms: {} }} }}\n",
        1 + random.below(20)
    );
    if random.below(3) > 0 || letter == "c" {
        let peer = pick(random);
        let method = ["A", "B", "C"][random.below(3)];
        writeln!(
            text,
            "        - Action: {{ CallService: {{ tracing_name: call {peer}, service: {peer}, grpc_method: {method} }} }}"
        )
        .unwrap();
    }
    if random.below(2) == 0 {
        text.push_str(
            "        - ConcurrentActions:\n            - Sleep: { tracing_name: left, duration_ms: 3 }\n            - Sleep: { tracing_name: right, duration_ms: 5, failure_chance: 0.01 }\n",
        );
    }
    text
}
