//! `spinup_instance`, `list_instances`, `teardown_instance`: rented GPUs,
//! with the money rules of DESIGN decision 9 (quote, the artist's yes with a
//! price cap, then create; teardown verified by listing).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput};
use super::super::{AtegnatosServer, reply};
use crate::cloud::CloudError;
use crate::cloud::lifecycle::{self, SpinUpRequest};
use crate::cloud::quote::{self, QuoteRequest};
use crate::studio::Hint;

/// A quote (first call) or a rental (second call).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SpinupInstanceArgs {
    /// From the first call.
    #[serde(default)]
    pub quote_id: Option<String>,
    /// The chosen offer.
    #[serde(default)]
    pub offer_id: Option<String>,
    /// $/h cap the artist said yes to.
    #[serde(default)]
    pub max_price_per_hour: Option<f64>,
    /// Time cap, h.
    #[serde(default)]
    pub max_hours: Option<f64>,
    /// Size from this project's plan.
    #[serde(default)]
    pub project: Option<String>,
    /// GPU GB (no plan).
    #[serde(default)]
    pub min_vram_gb: Option<f64>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Which instance to destroy.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TeardownInstanceArgs {
    /// Our id (`i-…`) or the provider's.
    pub instance_id: String,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

fn refuse(e: &CloudError) -> CallToolResult {
    reply::failure(e, e.hint())
}

#[tool_router(router = cloud_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Rents a cloud GPU; costs money. Without quote_id: offers and the run's cost, nothing rented. Rents only with quote_id, offer_id, max_price_per_hour after the artist's explicit yes.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn spinup_instance(
        &self,
        Parameters(args): Parameters<SpinupInstanceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let cfg = self.shared().cloud.clone();
        let Some(quote_id) = args.quote_id.clone() else {
            if args.offer_id.is_some() {
                return reply::failure(
                    "an offer_id needs the quote_id it came from",
                    Some("call spinup_instance without offer_id first to get a quote".into()),
                );
            }
            let req = QuoteRequest {
                provider: None,
                project: args.project.clone(),
                min_vram_gb: args.min_vram_gb,
                disk_gb: None,
                hours: None,
                gpu: None,
                max_price_per_hour: args.max_price_per_hour,
            };
            return match quote::make_quote(&ws, &cfg, &req).await {
                Ok(q) => reply::structured(&q, q.plain_summary()),
                Err(e) => refuse(&e),
            };
        };
        let (Some(offer_id), Some(cap)) = (args.offer_id.clone(), args.max_price_per_hour) else {
            return reply::failure(
                "renting needs offer_id and max_price_per_hour as well as quote_id",
                Some("show the artist the quote, and pass the offer and the price cap they said yes to".into()),
            );
        };
        let req = SpinUpRequest {
            quote_id,
            offer_id,
            max_price_per_hour: cap,
            max_hours: args.max_hours,
            max_total_usd: None,
            image: None,
        };
        let prepared = match lifecycle::prepare(&ws, &cfg, &req) {
            Ok(p) => p,
            Err(e) => return refuse(&e),
        };
        let handle = tokio::runtime::Handle::current();
        let (_job, result) = super::run_job(
            self,
            "spinup_instance",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let done = handle.block_on(lifecycle::spin_up(&ws, &cfg, &prepared, progress));
                match done {
                    Ok(s) => Ok(JobOutput {
                        summary: s.plain_summary(),
                        result: serde_json::to_value(&s).unwrap_or_default(),
                        changed: Vec::new(),
                        previews: Vec::new(),
                    }),
                    Err(e) => Err(JobFailure {
                        hint: lifecycle::failed_spin_up_hint(&prepared, &e),
                        error: e.to_string(),
                    }),
                }
            },
        )
        .await;
        result
    }

    #[tool(
        description = "The studio's rented GPUs, checked against each provider's own listing: state, $/h, cost so far. Adds and flags ones of ours the ledger lacked.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_instances(&self) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let cfg = self.shared().cloud.clone();
        match lifecycle::reconcile(&ws, &cfg).await {
            Ok(r) => reply::structured(&r, r.plain_summary()),
            Err(e) => refuse(&e),
        }
    }

    #[tool(
        description = "Destroys a rented GPU (never stops: a stopped one bills its disk), then lists until the provider no longer has it. Safe to repeat.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn teardown_instance(
        &self,
        Parameters(args): Parameters<TeardownInstanceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let cfg = self.shared().cloud.clone();
        let handle = tokio::runtime::Handle::current();
        let id = args.instance_id.clone();
        let (_job, result) = super::run_job(
            self,
            "teardown_instance",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let done = handle.block_on(lifecycle::tear_down(
                    &ws,
                    &cfg,
                    &id,
                    "asked to tear it down",
                    progress,
                ));
                match done {
                    Ok(t) => Ok(JobOutput {
                        summary: t.plain_summary(),
                        result: serde_json::to_value(&t).unwrap_or_default(),
                        changed: Vec::new(),
                        previews: Vec::new(),
                    }),
                    Err(e) => Err(JobFailure {
                        hint: e.hint(),
                        error: e.to_string(),
                    }),
                }
            },
        )
        .await;
        result
    }
}
