//! `ategnatos cloud quote|up|list|down`: rented GPUs from a shell, over the
//! same domain functions as `spinup_instance`, `list_instances` and
//! `teardown_instance`, with the same money rule: a quote costs nothing,
//! and nothing is rented without the quote id, the offer id and a price
//! cap per hour.

use std::path::Path;
use std::process::ExitCode;

use ategnatos::cloud::lifecycle::{self, SpinUpRequest};
use ategnatos::cloud::quote::{self, QuoteRequest};
use ategnatos::cloud::{CloudConfig, dollars};
use ategnatos::studio::Hint;

use super::progress::Bar;
use super::{CliError, open_workspace, print_json};

/// `ategnatos cloud …`
#[derive(clap::Subcommand)]
pub enum CloudCmd {
    /// Offers for a run and what it would cost; rents nothing.
    Quote(QuoteCmd),
    /// Rent one quoted offer (costs money): needs --quote-id, --offer-id and --max-price-per-hour.
    Up(UpCmd),
    /// The studio's rented GPUs, checked against each provider's own listing.
    List(ListCmd),
    /// Destroy a rented GPU and check with the provider that it is gone.
    Down(DownCmd),
    /// Train a project on a rented GPU over SSH, bring the LoRA home, destroy the GPU.
    Train(TrainCmd),
    /// Enforce the time and money caps from a shell: a watchdog round now and every minute (or --once).
    Watch(WatchCmd),
    /// Hand a project's run to SkyPilot (`sky` on PATH): any cloud it knows, torn down when idle.
    Sky(SkyCmd),
    /// Rename a copied studio's old folder in a project's state and configs (the SkyPilot run does this).
    #[command(hide = true)]
    Rehome(RehomeCmd),
}

/// `ategnatos cloud watch`
#[derive(clap::Args)]
pub struct WatchCmd {
    /// One round, then exit.
    #[arg(long)]
    once: bool,
    /// Print the round as JSON (with --once).
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud sky`
#[derive(clap::Args)]
pub struct SkyCmd {
    /// The project.
    project: String,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud rehome`
#[derive(clap::Args)]
pub struct RehomeCmd {
    /// The project.
    project: String,
    /// The studio folder the copy came from.
    #[arg(long)]
    from: String,
}

/// `ategnatos cloud train`
#[derive(clap::Args)]
pub struct TrainCmd {
    /// The project.
    project: String,
    /// The running instance to train on (`i-…` or the provider's id).
    #[arg(long)]
    instance: String,
    /// The studio folder on the instance (default: `ategnatos-studio` in its home).
    #[arg(long, value_name = "PATH")]
    remote_root: Option<String>,
    /// An Ategnatos installed on the instance, instead of sending this one.
    #[arg(long, value_name = "PATH")]
    remote_program: Option<String>,
    /// Keep the instance after the run (it bills until `ategnatos cloud down`).
    #[arg(long)]
    keep: bool,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud quote`
#[derive(clap::Args)]
pub struct QuoteCmd {
    /// Size the machine from this project's plan.
    #[arg(long)]
    project: Option<String>,
    /// GPU memory in GB, when there is no plan.
    #[arg(long, value_name = "GB")]
    min_vram_gb: Option<f64>,
    /// Leave out offers above this many dollars an hour.
    #[arg(long, value_name = "DOLLARS")]
    max_price_per_hour: Option<f64>,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud up`
#[derive(clap::Args)]
pub struct UpCmd {
    /// The quote, from `ategnatos cloud quote`.
    #[arg(long)]
    quote_id: Option<String>,
    /// The chosen offer of that quote.
    #[arg(long)]
    offer_id: Option<String>,
    /// The most you agree to pay per hour, in dollars.
    #[arg(long, value_name = "DOLLARS")]
    max_price_per_hour: Option<f64>,
    /// Time cap in hours (default: twice the run's estimate, at least 1).
    #[arg(long, value_name = "HOURS")]
    max_hours: Option<f64>,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud list`
#[derive(clap::Args)]
pub struct ListCmd {
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos cloud down`
#[derive(clap::Args)]
pub struct DownCmd {
    /// Our id (`i-…`) or the provider's.
    instance_id: String,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("could not start the async runtime: {e}"), None))
}

pub fn run(root: &Path, cmd: CloudCmd) -> Result<ExitCode, CliError> {
    let cfg = CloudConfig::from_env();
    match cmd {
        CloudCmd::Quote(cmd) => run_quote(root, &cfg, cmd),
        CloudCmd::Up(cmd) => run_up(root, &cfg, cmd),
        CloudCmd::List(cmd) => run_list(root, &cfg, cmd),
        CloudCmd::Down(cmd) => run_down(root, &cfg, cmd),
        CloudCmd::Train(cmd) => run_train(root, &cfg, cmd),
        CloudCmd::Watch(cmd) => run_watch(root, &cfg, cmd),
        CloudCmd::Sky(cmd) => run_sky(root, cmd),
        CloudCmd::Rehome(cmd) => run_rehome(root, cmd),
    }
}

fn run_quote(root: &Path, cfg: &CloudConfig, cmd: QuoteCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let req = QuoteRequest {
        project: cmd.project,
        min_vram_gb: cmd.min_vram_gb,
        max_price_per_hour: cmd.max_price_per_hour,
        ..QuoteRequest::default()
    };
    let q = runtime()?
        .block_on(quote::make_quote(&ws, cfg, &req))
        .map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&q)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", q.plain_summary());
    for o in &q.offers {
        outln!(
            "  {:<24} {:<8} {:<22} {:>3.0} GB  {:>7}/h  ≈{} for the run{}{}",
            o.offer_id,
            o.provider.name(),
            o.gpu,
            o.vram_gb,
            dollars(o.price_per_hour),
            dollars(o.estimated_cost),
            o.reliability
                .map(|r| format!(", reliability {:.0}%", r * 100.0))
                .unwrap_or_default(),
            o.location
                .as_deref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default()
        );
    }
    if let Some(best) = q.offers.first() {
        outln!(
            "To rent one: ategnatos cloud up --quote-id {} --offer-id {} --max-price-per-hour {}",
            q.quote_id,
            best.offer_id,
            best.price_per_hour
        );
    }
    Ok(if q.offers.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_up(root: &Path, cfg: &CloudConfig, cmd: UpCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let Some(quote_id) = cmd.quote_id else {
        return Err(CliError::new(
            "renting needs a quote first: no --quote-id was given, and nothing was rented",
            Some("run `ategnatos cloud quote` (it costs nothing), then `ategnatos cloud up --quote-id Q --offer-id O --max-price-per-hour X` with the offer and the price you agree to".into()),
        ));
    };
    let (Some(offer_id), Some(cap)) = (cmd.offer_id, cmd.max_price_per_hour) else {
        return Err(CliError::new(
            "renting needs --offer-id and --max-price-per-hour as well as --quote-id; nothing was rented",
            Some("pick an offer from the quote and give the most you agree to pay per hour, e.g. `--offer-id vast-123 --max-price-per-hour 0.45`".into()),
        ));
    };
    let req = SpinUpRequest {
        quote_id,
        offer_id,
        max_price_per_hour: cap,
        max_hours: cmd.max_hours,
        ..SpinUpRequest::default()
    };
    let prepared = lifecycle::prepare(&ws, cfg, &req).map_err(|e| CliError::new(&e, e.hint()))?;
    let bar = Bar::new();
    let done = runtime()?.block_on(lifecycle::spin_up(&ws, cfg, &prepared, &bar));
    bar.finish();
    let s = done.map_err(|e| CliError::new(&e, lifecycle::failed_spin_up_hint(&prepared, &e)))?;
    if cmd.json {
        print_json(&s)?;
    } else {
        outln!("{}", s.plain_summary());
        // The watchdog lives in the server: from a shell, the caps hold
        // only while `ategnatos serve` runs for this studio.
        outln!(
            "The time and money caps are enforced while `ategnatos serve` or `ategnatos cloud watch` runs for this studio, and while `ategnatos cloud train` follows a run there; otherwise it bills until `ategnatos cloud down {}`.",
            s.instance.record.instance_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_list(root: &Path, cfg: &CloudConfig, cmd: ListCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let r = runtime()?
        .block_on(lifecycle::reconcile(&ws, cfg))
        .map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", r.plain_summary());
    for v in &r.instances {
        let rec = &v.record;
        outln!(
            "  {:<22} {:<8} {:<22} {:<11} {:>7}/h  ≈{} so far",
            rec.instance_id,
            rec.provider.name(),
            rec.gpu,
            rec.state.word(),
            rec.price_per_hour
                .map(dollars)
                .unwrap_or_else(|| "?".into()),
            dollars(v.cost_so_far_usd)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_down(root: &Path, cfg: &CloudConfig, cmd: DownCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let bar = Bar::new();
    let done = runtime()?.block_on(lifecycle::tear_down(
        &ws,
        cfg,
        &cmd.instance_id,
        "asked to tear it down",
        &bar,
    ));
    bar.finish();
    let t = done.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&t)?;
    } else {
        outln!("{}", t.plain_summary());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_train(root: &Path, cfg: &CloudConfig, cmd: TrainCmd) -> Result<ExitCode, CliError> {
    use ategnatos::cloud::remote::{RemoteOptions, train_remote};
    use ategnatos::run::launch::RunState;
    let ws = open_workspace(root)?;
    let opts = RemoteOptions {
        instance: cmd.instance,
        remote_root: cmd.remote_root,
        remote_program: cmd.remote_program,
        program: None,
        keep_instance: cmd.keep,
        cancel: false,
    };
    let rt = runtime()?;
    let bar = Bar::new();
    let done = train_remote(&ws, cfg, rt.handle(), &cmd.project, &opts, &bar);
    bar.finish();
    let outcome = done.map_err(|e| CliError::new(&e, e.hint()))?;
    let complete = outcome
        .run
        .as_ref()
        .is_some_and(|r| r.state == RunState::Complete);
    if cmd.json {
        print_json(&outcome)?;
    } else {
        if let Some(at) = &outcome.resumed_at {
            outln!("Picked up at {at}.");
        }
        outln!("{}", outcome.summary);
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_sky(root: &Path, cmd: SkyCmd) -> Result<ExitCode, CliError> {
    use ategnatos::cloud::skypilot::{find_sky, hand_off};
    let ws = open_workspace(root)?;
    let sky = find_sky(std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        CliError::new(
            "SkyPilot's `sky` is not on PATH; nothing was launched",
            Some("install it (`pip install \"skypilot[runpod,vast,lambda]\"`), run `sky check`, then try again; or rent a GPU with `ategnatos cloud quote`".into()),
        )
    })?;
    let done = hand_off(&ws, &cmd.project, &sky, None).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&done)?;
    } else {
        outln!("{}", done.summary);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_rehome(root: &Path, cmd: RehomeCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let changed = ategnatos::cloud::remote::rehome(&ws, &cmd.project, &cmd.from)
        .map_err(|e| CliError::new(&e, e.hint()))?;
    outln!(
        "{} file(s) of `{}` now name this studio's folder{}",
        changed.len(),
        cmd.project,
        if changed.is_empty() {
            String::new()
        } else {
            format!(": {}", changed.join(", "))
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_watch(root: &Path, cfg: &CloudConfig, cmd: WatchCmd) -> Result<ExitCode, CliError> {
    use ategnatos::cloud::watchdog;
    let ws = open_workspace(root)?;
    let rt = runtime()?;
    if !cmd.once {
        outln!(
            "Watching this studio's rented GPUs: any past its time or money cap, or idle after its run, is destroyed. Ctrl-C stops watching (it stops nothing else)."
        );
        rt.block_on(watchdog::run(ws, cfg.clone()));
        return Ok(ExitCode::SUCCESS);
    }
    let sweep = rt.block_on(watchdog::sweep(&ws, cfg));
    if cmd.json {
        print_json(&sweep)?;
    } else {
        for a in &sweep.actions {
            match (&a.error, a.destroyed) {
                (_, true) => outln!("Destroyed `{}`: {}.", a.instance_id, a.reason),
                (Some(e), false) => {
                    outln!("Could not destroy `{}` ({}): {e}", a.instance_id, a.reason)
                }
                (None, false) => outln!("`{}` must go: {}.", a.instance_id, a.reason),
            }
        }
        for c in &sweep.changes {
            outln!("{c}");
        }
        if let Some(e) = &sweep.reconcile_error {
            outln!("Could not check with the providers: {e}");
        }
        match watchdog::billing_warning(&ws) {
            Some(w) => outln!("{w}"),
            None => outln!("No rented GPU of this studio is billing."),
        }
    }
    Ok(if sweep.actions.iter().any(|a| a.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
