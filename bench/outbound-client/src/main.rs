//! bench/outbound: what an instrumented outbound call costs. The same
//! `GET /products` to a bare poem server in another process
//! (bench/baseline), made by telltale's `kind: http` client (its span
//! logic, metrics, retry budget and bounded read) and by plain `reqwest`
//! with the same settings (the 5 s timeout of the whole call, the 2 s
//! connect timeout, no redirects), in interleaved rounds on one current-thread
//! runtime. Reported: the client process's CPU time per call (its cost; the
//! callee is another process) and the wall time per call, each as the
//! median over rounds of the instrumented ÷ plain ratio.
//!
//! Usage: `telltale-outbound-bench --callee http://127.0.0.1:PORT
//! [--rounds R] [--calls N] [--concurrency C] [--smoke]`. Exits 1 when the
//! median CPU ratio is over 1.05 (not with `--smoke`).

use std::time::{Duration, Instant};
use telltale::HttpClient;

struct Args {
    callee: String,
    rounds: usize,
    calls: usize,
    concurrency: usize,
    smoke: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        callee: String::new(),
        rounds: 15,
        calls: 4000,
        concurrency: 4,
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--callee" => a.callee = value()?,
            "--rounds" => a.rounds = value()?.parse().map_err(|_| "bad --rounds")?,
            "--calls" => a.calls = value()?.parse().map_err(|_| "bad --calls")?,
            "--concurrency" => a.concurrency = value()?.parse().map_err(|_| "bad --concurrency")?,
            "--smoke" => {
                a.smoke = true;
                a.rounds = 3;
                a.calls = 200;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.callee.is_empty() {
        return Err("--callee URL is required".into());
    }
    Ok(a)
}

/// This process's CPU time.
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `n` calls of `call`, `c` at a time: (wall, CPU) per call, in µs.
async fn measure<F, Fut>(n: usize, c: usize, call: F) -> (f64, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (t, p) = (Instant::now(), cpu());
    let lanes = (0..c).map(|_| async {
        for _ in 0..n / c {
            call().await;
        }
    });
    futures_util::future::join_all(lanes).await;
    let calls = (n / c * c) as f64;
    (
        t.elapsed().as_secs_f64() * 1e6 / calls,
        (cpu() - p).as_secs_f64() * 1e6 / calls,
    )
}

/// One round: (plain, instrumented), each (wall, CPU) µs per call.
type Row = ((f64, f64), (f64, f64));

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn instrumented_client(callee: &str) -> Result<HttpClient, String> {
    let dir = std::env::temp_dir().join(format!("telltale-outbound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let manifest = dir.join("manifest.yaml");
    std::fs::write(
        &manifest,
        format!(
            "service: {{ name: outbound-bench, version: 0.0.0 }}\n\
             dependencies:\n  - name: peer\n    kind: http\n    url: {callee}\n    timeout: 5s\n    required: false\n    options: {{ retries: 0, methods: [GET] }}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let model =
        telltale::internals::model::open(Some(&manifest), &telltale::KindRegistry::builtin())
            .map_err(|e| format!("{e:?}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    let running = telltale::internals::server::dependencies::start(&model)
        .await?
        .ok_or("no dependency started")?;
    running.client::<HttpClient>("peer")
}

async fn run(a: Args) -> Result<bool, String> {
    let ours = instrumented_client(&a.callee).await?;
    // The same settings as the dependency's: its 5 s timeout for the whole
    // call, its 2 s connect timeout, no redirects.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/products", a.callee.trim_end_matches('/'));
    let plain_call = || async {
        let r = plain.get(&url).send().await.expect("plain call");
        assert!(r.status().is_success());
        r.bytes().await.expect("plain body");
    };
    let our_call = || async {
        let r = ours
            .get("/products")
            .send()
            .await
            .expect("instrumented call");
        assert!(r.status().is_success());
    };
    // Warm both pools and caches.
    measure(a.calls / 4 + a.concurrency, a.concurrency, plain_call).await;
    measure(a.calls / 4 + a.concurrency, a.concurrency, our_call).await;
    let (mut wall, mut cpu_r, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let (p, o) = if round % 2 == 0 {
            let p = measure(a.calls, a.concurrency, plain_call).await;
            (p, measure(a.calls, a.concurrency, our_call).await)
        } else {
            let o = measure(a.calls, a.concurrency, our_call).await;
            (measure(a.calls, a.concurrency, plain_call).await, o)
        };
        wall.push(o.0 / p.0);
        cpu_r.push(o.1 / p.1);
        rows.push((p, o));
    }
    let med = |f: &dyn Fn(&Row) -> f64| median(rows.iter().map(f).collect());
    let (cpu_ratio, wall_ratio) = (median(cpu_r), median(wall));
    println!(
        "| case | wall µs / call | client CPU µs / call |\n| --- | ---: | ---: |\n\
         | plain reqwest | {:.1} | {:.2} |\n| telltale `kind: http` | {:.1} | {:.2} |\n\
         | ratio (median of {} rounds of {} calls, {} at a time) | {:.3} × | {:.3} × |",
        med(&|r| r.0 .0),
        med(&|r| r.0 .1),
        med(&|r| r.1 .0),
        med(&|r| r.1 .1),
        a.rounds,
        a.calls,
        a.concurrency,
        wall_ratio,
        cpu_ratio
    );
    let met = cpu_ratio <= 1.05;
    println!(
        "\ntarget: the instrumented call's client CPU ≤ 1.05 × plain reqwest's: {}",
        if a.smoke {
            "not judged (--smoke)"
        } else if met {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(met || a.smoke)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("telltale-outbound-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match rt.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("telltale-outbound-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
