//! Measures what a validator plugin adds to one issuance: a fresh instance of the example
//! naming validator per call (pooling allocator, pre-instantiated component, epoch deadline,
//! memory limit), called with an issuance-shaped subject. Prints p50/p90/p99 in µs.
//!
//! ```sh
//! cargo build --release -p sigil-tests --bins && target/release/plugin_bench --calls 20000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use clap::Parser;
use sigil_wasm::plugin::{Kv, Subject};
use sigil_wasm::{PluginEngine, PluginPolicy};

/// Validator call benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Measured calls.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let wasm =
        std::fs::read(format!("{}/naming_validator.wasm", env!("SIGIL_TEST_PLUGINS"))).unwrap();
    let engine = std::sync::Arc::new(PluginEngine::new(None).unwrap());
    let policy = PluginPolicy {
        grants: ["log", "config"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        config: BTreeMap::from([("cn_suffix".to_owned(), ".corp.example".to_owned())]),
        max_concurrency: args.concurrency.max(1),
        ..Default::default()
    };
    let plugin = std::sync::Arc::new(engine.load("naming", &wasm, policy).unwrap());
    let subject = Subject {
        hook: "certificate-issuance".into(),
        attributes: vec![Kv { key: "CN".into(), value: "web.corp.example".into() }],
        sans: vec!["dns:web.corp.example".into()],
        key_type: Some("p256".into()),
        key_bits: Some(256),
        context: "tls-server".into(),
        json: r#"{"profile":"tls-server","subject":["CN=web.corp.example"],"sans":["dns:web.corp.example"]}"#.into(),
    };
    for _ in 0..500 {
        engine.validate(&plugin, &subject).await.unwrap();
    }
    let per = args.calls / args.concurrency.max(1);
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..args.concurrency.max(1) {
        let (engine, plugin, subject) = (engine.clone(), plugin.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                engine.validate(&plugin, &subject).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    lat.sort();
    let us = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    println!(
        "validator call (fresh instance each, pooling={}): {} calls, {} concurrent, {:.0} calls/s",
        engine.pooling(),
        lat.len(),
        args.concurrency,
        lat.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        us(0.5),
        us(0.9),
        us(0.99),
        us(1.0)
    );
}
