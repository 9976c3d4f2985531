//! Seeds the benchmark dataset (see `dataset.rs`) and writes what the benchmark needs to know
//! about it as JSON.
//!
//! Usage: DATABASE_URL=… bench_seed <cases> <out.json>   (cases: a power of ten, 10 000 or more)

mod dataset;

use dossier::db;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cases, out) = match args.as_slice() {
        [_, cases, out] => (cases.parse::<u64>().expect("a number of cases"), out),
        _ => panic!("usage: bench_seed <cases> <out.json>"),
    };
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = db::build_pool(&url, 1, Default::default()).expect("pool");
    let mut conn = pool.get().expect("connection");
    db::run_migrations(&mut conn).expect("migrations");
    let summary = dataset::seed(&mut conn, cases);
    std::fs::write(out, serde_json::to_string_pretty(&summary).unwrap()).expect("write summary");
    eprintln!(
        "seeded {cases} cases, {} messages, {} storyline events in {:.1} s",
        summary["messages"], summary["storyline_events"], summary["seconds"]
    );
}
