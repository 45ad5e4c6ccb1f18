//! `lifeboat ctl`: the operator's side of the admin API, so an image with
//! no curl or wget can still be flipped (`kubectl exec … lifeboat ctl mode
//! degraded`). Talks to an admin URL (`--admin`, or `LIFEBOAT_ADMIN`), with
//! the token from `LIFEBOAT_TOKEN` when one is needed. With `[fleet]`, one
//! command reaches every instance.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How long the admin listener has to answer, head and body.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// The most of an answer read: the admin API's are a few KiB.
const MAX_ANSWER: usize = 1 << 20;

/// Options of `lifeboat ctl`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The admin listener's URL.
    #[arg(long, env = "LIFEBOAT_ADMIN", default_value = "http://127.0.0.1:9090")]
    pub admin: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Ctl,
}

/// The commands.
#[derive(Debug, clap::Subcommand)]
pub enum Ctl {
    /// Force a mode (degraded, normal) or go back to auto.
    Mode {
        /// degraded, normal or auto.
        #[arg(value_parser = ["degraded", "normal", "auto"])]
        mode: String,
        /// How long (e.g. 30m); until lifted without it.
        #[arg(long)]
        ttl: Option<String>,
        /// Why, in your words: it goes in the story.
        #[arg(long)]
        reason: Option<String>,
        /// Only this instance, not the fleet.
        #[arg(long)]
        instance_only: bool,
    },
    /// Post the visitors' message ("" clears it).
    Message {
        /// The text.
        text: String,
        /// investigating, identified, monitoring or resolved.
        #[arg(long)]
        stage: Option<String>,
        /// Who signs it.
        #[arg(long)]
        signed: Option<String>,
        /// Only this instance, not the fleet.
        #[arg(long)]
        instance_only: bool,
    },
    /// The mode, the override and the signals.
    Status,
    /// Every live instance of the fleet.
    Fleet,
}

/// Why a command failed, in one line for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The URL is not one.
    #[error("--admin: {0}")]
    Url(String),
    /// Nothing answered.
    #[error("cannot reach lifeboat's admin listener at {url}: {detail}")]
    Unreachable {
        /// Where.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// It answered with an error.
    #[error("{status}: {message}")]
    Refused {
        /// The status.
        status: StatusCode,
        /// Its error, or a hint.
        message: String,
    },
}

/// Runs one command; what to print on success.
pub async fn run(opts: Options) -> Result<String, CtlError> {
    let scope = |only: bool| if only { "instance" } else { "fleet" };
    let (method, path, body) = match &opts.command {
        Ctl::Mode {
            mode,
            ttl,
            reason,
            instance_only,
        } => {
            let mut b = json!({ "mode": mode, "scope": scope(*instance_only) });
            if let Some(t) = ttl {
                b["ttl"] = json!(t);
            }
            if let Some(r) = reason {
                b["reason"] = json!(r);
            }
            (Method::POST, "/mode", Some(b))
        }
        Ctl::Message {
            text,
            stage,
            signed,
            instance_only,
        } => {
            let mut b = json!({ "text": text, "scope": scope(*instance_only) });
            if let Some(s) = stage {
                b["stage"] = json!(s);
            }
            if let Some(s) = signed {
                b["signed"] = json!(s);
            }
            (Method::POST, "/message", Some(b))
        }
        Ctl::Status => (Method::GET, "/mode", None),
        Ctl::Fleet => (Method::GET, "/fleet", None),
    };
    let answer = request(&opts.admin, method, path, body).await?;
    Ok(match opts.command {
        Ctl::Mode { .. } | Ctl::Status => describe_mode(&answer),
        Ctl::Message { text, .. } if text.is_empty() => format!(
            "message cleared ({})",
            answer["scope"].as_str().unwrap_or("instance")
        ),
        Ctl::Message { .. } => format!(
            "message posted ({}): {}",
            answer["scope"].as_str().unwrap_or("instance"),
            answer["message"].as_str().unwrap_or("")
        ),
        Ctl::Fleet => describe_fleet(&answer),
    })
}

async fn request(
    admin: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CtlError> {
    let base = admin.trim_end_matches('/');
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| CtlError::Url(format!("{admin}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(CtlError::Url(format!(
            "expected an http:// URL, found {admin}"
        )));
    }
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Ok(token) = std::env::var("LIFEBOAT_TOKEN")
        && !token.is_empty()
    {
        req = req.header("authorization", format!("Bearer {}", token.trim()));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = req
        .body(Full::new(body))
        .map_err(|e| CtlError::Url(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let unreachable = |detail: String| CtlError::Unreachable {
        url: base.to_string(),
        detail,
    };
    // One deadline for the whole answer, head and body: an admin listener
    // that sends a head and then stalls must not hang the operator's shell.
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unreachable(format!("its answer: {e}")))?
            .to_bytes();
        Ok::<_, CtlError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .map_err(|_| {
            unreachable(format!(
                "no whole answer within {} s",
                ANSWER_WITHIN.as_secs()
            ))
        })??;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let mut message = v["error"].as_str().unwrap_or("no reason given").to_string();
        if status == StatusCode::UNAUTHORIZED {
            message.push_str(" (set LIFEBOAT_TOKEN to the admin token)");
        }
        return Err(CtlError::Refused { status, message });
    }
    Ok(v)
}

fn describe_mode(v: &Value) -> String {
    let mut out = format!(
        "mode {} since {}",
        v["mode"].as_str().unwrap_or("?"),
        v["since"].as_str().unwrap_or("?")
    );
    match v["override"].as_object() {
        Some(o) => {
            out += &format!(
                "\noverride {} ({})",
                o.get("mode").and_then(Value::as_str).unwrap_or("?"),
                o.get("reason").and_then(Value::as_str).unwrap_or("")
            );
            if let Some(s) = o.get("expires_in_s").and_then(Value::as_u64) {
                out += &format!(", {} min left", s.div_ceil(60));
            }
        }
        None => out += "\nautomatic (no override)",
    }
    if let Some(scope) = v["scope"].as_str() {
        out += &format!("\nscope {scope}");
    }
    let origin = &v["origin"];
    out += &format!(
        "\norigin limit {} ({}), in flight {}, queued {}",
        origin["limit"],
        if origin["learned"] == true {
            "learned"
        } else {
            "set"
        },
        origin["inflight"],
        origin["queued"]
    );
    out
}

fn describe_fleet(v: &Value) -> String {
    let f = &v["fleet"];
    let mut out = if v["configured"] == true {
        format!(
            "fleet {}: {} of {} instances degraded, {} recovering{}",
            f["mode"].as_str().unwrap_or("?"),
            f["degraded"],
            f["instances"],
            f["recovering"],
            if v["connected"] == true {
                ""
            } else {
                " (redis unreachable: this instance alone)"
            }
        )
    } else {
        "no [fleet] configured: this instance alone".to_string()
    };
    out += "\ninstance          mode        limit  in-flight  offered/s  shed/s";
    for m in v["instances"].as_array().into_iter().flatten() {
        out += &format!(
            "\n{:<16}  {:<10}  {:>5}  {:>9}  {:>9.0}  {:>6.0}",
            m["id"].as_str().unwrap_or("?"),
            m["mode"].as_str().unwrap_or("?"),
            m["limit"].as_u64().unwrap_or(0),
            m["inflight"].as_u64().unwrap_or(0),
            m["offered_per_s"].as_f64().unwrap_or(0.0),
            m["shed_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    out
}
