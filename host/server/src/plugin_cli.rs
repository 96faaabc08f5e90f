//! `sigil plugin check FILE.wasm` and `sigil plugin run FILE.wasm --input FILE.json`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use sigil_wasm::plugin::GRANTS;
use sigil_wasm::{PluginEngine, PluginError, PluginPolicy};

fn all_grants() -> PluginPolicy {
    PluginPolicy {
        grants: GRANTS.iter().map(|g| g.to_string()).collect::<BTreeSet<_>>(),
        ..Default::default()
    }
}

/// Prints the world, the WIT version, the imports and a verdict; exit code 0 when it loads.
pub fn check(engine: &PluginEngine, file: &Path) -> Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    match engine.load("check", &bytes, all_grants()) {
        Ok(p) => {
            let version = p
                .imports
                .iter()
                .find_map(|i| i.strip_prefix("sigil:plugin/").and_then(|r| r.split('@').nth(1)))
                .unwrap_or("0.1.0 (no sigil:plugin imports)");
            let needs: Vec<_> = p
                .imports
                .iter()
                .filter_map(|i| i.strip_prefix("sigil:plugin/"))
                .map(|r| r.split('@').next().unwrap_or(r))
                .filter(|g| GRANTS.contains(g))
                .collect();
            println!("file:     {}", file.display());
            println!("sha256:   {}", p.digest);
            println!("world:    {}", serde_json::to_value(p.world)?.as_str().unwrap_or("?"));
            println!("wit:      sigil:plugin@{version}");
            println!("imports:");
            for i in &p.imports {
                println!("  {i}");
            }
            println!(
                "grants it needs: {}",
                if needs.is_empty() { "none".to_owned() } else { needs.join(", ") }
            );
            println!("verdict:  ok");
            Ok(0)
        }
        Err(e) => {
            println!("file:     {}", file.display());
            println!("verdict:  refused: {e}");
            Ok(1)
        }
    }
}

/// Runs one call of the plugin's world under production limits (inputs per world: see
/// `sdk/README.md`); exit code 0 on success, 3 on timeout, 4 on the memory limit, 1 on any
/// other failure.
pub async fn run(
    engine: &PluginEngine,
    file: &Path,
    input: &Path,
    policy: PluginPolicy,
) -> Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("the input is not JSON")?;
    // Every grant: the run is for trying the plugin out, not for limiting it.
    let policy = PluginPolicy { grants: all_grants().grants, ..policy };
    let plugin = engine.load("run", &bytes, policy)?;
    match engine.run_json(&plugin, &v).await {
        Ok((result, stats)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "world": plugin.world,
                    "result": result,
                    "duration_us": stats.duration.as_micros(),
                    "peak_memory_bytes": stats.peak_memory,
                }))?
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(match e {
                PluginError::Timeout { .. } => 3,
                PluginError::MemoryLimit { .. } => 4,
                _ => 1,
            })
        }
    }
}
