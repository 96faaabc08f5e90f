//! The load generator's inventory mode: typical certificate-list queries (filters, sorts, a
//! serial, a text search, a deep page by cursor) against a server holding many certificates,
//! each repeated, with latency percentiles per query.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// What one query measured.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// What was asked.
    pub name: String,
    /// The query string.
    pub query: String,
    /// Items on the page it returned (the last page, for the cursor walk).
    pub items: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

async fn page(client: &reqwest::Client, url: &str, key: &str, query: &str) -> Result<Value> {
    let r =
        client.get(format!("{url}/api/v1/certificates?{query}")).bearer_auth(key).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("GET /api/v1/certificates?{query}: {status} {v}");
    }
    Ok(v)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Runs each query `repeat` times, one at a time, and reports them. The queries take their
/// values (a serial, a subject, a time window) from the newest certificates.
pub async fn run(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    repeat: usize,
) -> Result<Vec<QueryRun>> {
    let newest = page(client, url, key, "sort=-issued_at&limit=50").await?;
    let items = newest["items"].as_array().context("items")?;
    ensure!(items.len() == 50, "the inventory needs at least 50 certificates");
    let serial = items[0]["serial"].as_str().context("serial")?.to_owned();
    let cn = items[1]["subject"].as_str().context("subject")?.trim_start_matches("CN=").to_owned();
    let (from, until) = (
        items[40]["issued_at"].as_str().context("issued_at")?.to_owned(),
        items[10]["issued_at"].as_str().context("issued_at")?.to_owned(),
    );
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(':', "%3A")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    let queries: Vec<(&str, String)> = vec![
        ("first page", "limit=50".into()),
        ("active, newest first", "status=active&sort=-issued_at&limit=50".into()),
        ("profile, soonest expiry first", "profile=tls-client&sort=not_after&limit=50".into()),
        ("expiring within 30 days", "expiring_within_days=30&limit=50".into()),
        (
            "issued in a window",
            format!("issued_from={}&issued_until={}&limit=50", enc(&from), enc(&until)),
        ),
        ("one serial", format!("serial={serial}")),
        ("revoked", "status=revoked&limit=50".into()),
        ("subject or SAN contains", format!("q={cn}&limit=50")),
        // A text most certificates contain: too common for the trigram index to narrow.
        ("subject or SAN contains (common)", "q=cn%3D&limit=50".into()),
        ("expired", "status=expired&limit=50".into()),
    ];
    let mut out = Vec::new();
    for (name, query) in queries {
        let mut lat = Vec::with_capacity(repeat);
        let mut n = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let v = page(client, url, key, &query).await?;
            lat.push(t.elapsed());
            n = v["items"].as_array().map_or(0, Vec::len);
        }
        lat.sort();
        out.push(QueryRun {
            name: name.into(),
            query,
            items: n,
            p50: pct(&lat, 0.5),
            p99: pct(&lat, 0.99),
            max: lat.last().copied().unwrap_or_default(),
        });
    }
    // The 20th page by cursor, each page timed.
    let mut lat = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    for _ in 0..20 {
        let q = match &cursor {
            Some(c) => format!("limit=50&cursor={}", enc(c)),
            None => "limit=50".into(),
        };
        let t = Instant::now();
        let v = page(client, url, key, &q).await?;
        lat.push(t.elapsed());
        n = v["items"].as_array().map_or(0, Vec::len);
        cursor = v["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    lat.sort();
    out.push(QueryRun {
        name: "pages 1 to 20 by cursor".into(),
        query: "limit=50&cursor=…".into(),
        items: n,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    });
    Ok(out)
}
