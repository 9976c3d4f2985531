//! The two workloads oha cannot drive, because each request depends on the one before or
//! differs in method: suspend/resume pairs (each worker owns its cases, so every transition is
//! legal) and the mixed workload (80% card reads, 20% messages). Writes oha's JSON shape (the
//! parts the summary reads), so both kinds of result are read alike.
//!
//! Usage: bench_drive <pair|mixed> <base-url> <seed.json> <token> <concurrency> <seconds>

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Outcome {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, scenario, base, seed, token, concurrency, seconds] = args.as_slice() else {
        panic!("usage: bench_drive <pair|mixed> <base-url> <seed.json> <token> <c> <seconds>");
    };
    let seed: Value = serde_json::from_slice(&std::fs::read(seed).unwrap()).unwrap();
    let concurrency: usize = concurrency.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().unwrap());
    let open: Vec<String> = seed["open_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let open = Arc::new(open);
    let auth = format!("Bearer {token}");
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (open, base, auth, scenario) =
                (open.clone(), base.clone(), auth.clone(), scenario.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut out = Outcome {
                    latencies: Vec::new(),
                    statuses: BTreeMap::new(),
                    errors: BTreeMap::new(),
                };
                // Worker w owns the open cases w, w + c, w + 2c…: nobody else moves them.
                let mine: Vec<&String> = open.iter().skip(w).step_by(concurrency).collect();
                assert!(!mine.is_empty(), "more workers than open cases");
                let mut rng = (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut step = 0usize;
                // A pair is never cut in half: the next run finds every case in progress again.
                while Instant::now() < deadline || (scenario == "pair" && step % 2 == 1) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let case = mine[(step / 2) % mine.len()];
                    let (path, body) = match scenario.as_str() {
                        "pair" => {
                            let action = if step.is_multiple_of(2) {
                                "suspend"
                            } else {
                                "resume"
                            };
                            (
                                format!("/v1/cases/{case}/transitions"),
                                Some(json!({"action": action, "reason": "Waiting for the client"})),
                            )
                        }
                        "mixed" => {
                            let target = &open[(rng % open.len() as u64) as usize];
                            if rng % 10 < 8 {
                                (format!("/v1/cases/{target}"), None)
                            } else {
                                (
                                    format!("/v1/cases/{target}/messages"),
                                    Some(json!({"body": "Any news about Friday?"})),
                                )
                            }
                        }
                        other => panic!("unknown scenario {other}"),
                    };
                    let url = format!("{base}{path}");
                    let t = Instant::now();
                    let result = match body {
                        None => agent.get(&url).header("authorization", &auth).call(),
                        Some(body) => agent
                            .post(&url)
                            .header("authorization", &auth)
                            .content_type("application/json")
                            .send(body.to_string()),
                    };
                    match result.and_then(|mut r| {
                        r.body_mut().read_to_vec()?;
                        Ok(r.status().as_u16())
                    }) {
                        Ok(status) => {
                            out.latencies.push(t.elapsed());
                            *out.statuses.entry(status).or_default() += 1;
                        }
                        Err(e) => *out.errors.entry(e.to_string()).or_default() += 1,
                    }
                    step += 1;
                }
                out
            })
        })
        .collect();
    let mut all = Outcome {
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    for worker in workers {
        let out = worker.join().unwrap();
        all.latencies.extend(out.latencies);
        for (k, v) in out.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        for (k, v) in out.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort();
    let pct = |p: f64| -> f64 {
        if all.latencies.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies.len() as f64 * p).ceil() as usize).clamp(1, all.latencies.len());
        all.latencies[i - 1].as_secs_f64()
    };
    let total = all.latencies.len() as u64 + all.errors.values().sum::<u64>();
    let report = json!({
        "summary": {
            "requestsPerSec": total as f64 / elapsed,
            "total": elapsed,
        },
        "latencyPercentiles": {"p50": pct(0.50), "p99": pct(0.99), "p99.9": pct(0.999)},
        "statusCodeDistribution": all.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errorDistribution": all.errors,
    });
    println!("{report}");
}
