//! The README's walk-through (`docs/walkthrough.sh`: curl, jq and openssl against a fresh
//! server) runs as written, step after step, on both databases.

use sigil_tests::{TestServer, backends};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/walkthrough.sh");
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .env("S", &s.url)
            .env("DATA", s.data_dir())
            .output()
            .await
            .expect("bash");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: the walk-through stopped:\n{text}", db.backend);
        assert!(text.contains("== done"), "{text}");
        s.stop().await;
        db.cleanup().await;
    }
}
