//! The command line, run in-process exactly as `sigil …` would run it.

use clap::Parser as _;
use reqwest::Method;
use sigil_server::cli::{Cli, run};
use sigil_tests::{TestServer, backends};

/// Runs `sigil ARGS…` and returns its exit code.
pub async fn sigil(args: &[&str]) -> i32 {
    let cli = Cli::try_parse_from(std::iter::once("sigil").chain(args.iter().copied())).unwrap();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil {args:?}: {e:#}");
            2
        }
    }
}

#[tokio::test]
async fn apikey_commands_work_on_the_data_dir_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(sigil(&["--data-dir", d, "migrate"]).await, 0);
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "ops",
            "--permissions",
            "api_keys:read,audit:*",
            "--expires",
            "30d",
            "--rate-limit",
            "100/minute",
            "--ip",
            "127.0.0.1"
        ])
        .await,
        0
    );
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "ops",
            "--permissions",
            "audit:read"
        ])
        .await,
        2,
        "names are unique"
    );
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "bad",
            "--permissions",
            "nope:read"
        ])
        .await,
        2
    );
    assert_eq!(sigil(&["--data-dir", d, "apikey", "list"]).await, 0);
    assert_eq!(sigil(&["--data-dir", d, "audit", "verify"]).await, 0);
    assert_eq!(sigil(&["--data-dir", d, "apikey", "revoke", "not-a-uuid"]).await, 2);
    assert_eq!(sigil(&["--data-dir", d, "check-config"]).await, 0);
}

#[tokio::test]
async fn a_key_created_on_the_command_line_is_honoured_and_revoked_by_the_server() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let d = s.data_dir().to_str().unwrap().to_owned();
        let cfg = s.data_dir().join("test.toml");
        let cfg = cfg.to_str().unwrap();
        // Create through the server's API, revoke through the CLI on the same database.
        let k = s
            .create_key(serde_json::json!({"name": "cli-victim", "permissions": ["api_keys:read"]}))
            .await;
        let secret = k["key"].as_str().unwrap();
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            sigil(&[
                "--config",
                cfg,
                "--data-dir",
                &d,
                "apikey",
                "revoke",
                k["id"].as_str().unwrap()
            ])
            .await,
            0
        );
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            401
        );
        let trail = s.trail("api_key", k["id"].as_str().unwrap()).await;
        assert_eq!(trail["items"][1]["actor"]["kind"], "cli");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn check_config_rejects_unknown_keys_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.toml");
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\"\n[exposure.endpoints.\"GET /api/v1/nothing\"]\nenabled = false\n").unwrap();
    assert_eq!(sigil(&["--config", f.to_str().unwrap(), "check-config"]).await, 2);
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"red\"\n").unwrap();
    assert_eq!(sigil(&["--config", f.to_str().unwrap(), "check-config"]).await, 2);
}
