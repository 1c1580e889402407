//! Compiles a Dockerfile to LLB with fbuild's native compiler, in process and
//! without a daemon, and prints how long one compile takes (the median of
//! many). Its bases must be `scratch` or earlier stages (nothing is
//! resolved). `scripts/bench_native.py` uses it for the compile-time figure.
//!
//!   cargo run --release --example compile_dockerfile -- Dockerfile [ROUNDS]
//!   cargo run --release --example compile_dockerfile -- --stages 200 [ROUNDS]

// A command-line tool: printing is its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use fbuild::dockerfile::compile::{compile_offline, CompileOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (text, rest) = match args.as_slice() {
        [flag, n, rest @ ..] if flag == "--stages" => (generated(n.parse().expect("--stages N")), rest),
        [path, rest @ ..] => (std::fs::read_to_string(path).expect("read the Dockerfile"), rest),
        [] => {
            eprintln!("usage: compile_dockerfile (DOCKERFILE | --stages N) [ROUNDS]");
            std::process::exit(2);
        }
    };
    let rounds: usize = rest.first().map_or(50, |r| r.parse().expect("ROUNDS"));
    let options = CompileOptions { session_id: "bench".into(), ..Default::default() };
    let mut times = Vec::with_capacity(rounds);
    let mut ops = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let compiled = compile_offline(&text, &options).unwrap_or_else(|e| panic!("{e}"));
        times.push(start.elapsed());
        ops = compiled.definition.def.len();
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("{ops} ops, median {:.3} ms over {rounds} compiles (min {:.3} ms)", ms(median), ms(times[0]));
}

fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// N stages, each from the previous, with an ENV, a RUN and a COPY from two
/// stages back: a long graph with cross-stage edges.
fn generated(stages: usize) -> String {
    let mut text = String::from("FROM scratch AS s0\nCOPY f0 /f0\n");
    for i in 1..stages {
        text.push_str(&format!("FROM s{} AS s{i}\nENV N={i}\nRUN echo {i} > /n{i}\n", i - 1));
        if i >= 2 {
            text.push_str(&format!("COPY --from=s{} /f0 /copied{i}\n", i - 2));
        }
    }
    text
}
