//! The admin listener (loopback by default): what the operator uses during
//! a stampede.
//!
//! | endpoint | |
//! |---|---|
//! | `GET /`, `GET /dashboard` | the live page ([`crate::dashboard`]) |
//! | `GET /dashboard/data?after=<ms>` | its data: the points after `after`, the marks, `/mode`'s answer |
//! | `GET /fleet` | with `[fleet]`: the fleet's mode and every live instance, from their heartbeats |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 while serving, 503 once draining |
//! | `GET /mode` | mode, since, override, signals |
//! | `POST /mode` | `{"mode": "degraded"\|"normal"\|"auto", "ttl": "30m", "reason": "…", "scope": "fleet"\|"instance"}` |
//! | `POST /message` | `{"text": "…", "stage": "identified", "signed": "…"}`: the live message on the apology page, and an incident update on the status page (stage and signature optional) |
//! | `GET /config` | the effective configuration, secrets redacted |
//! | `POST /reload` | re-read the config file |
//!
//! Mutating endpoints (`POST`) require `Authorization: Bearer <token>` when
//! a token is configured, which it must be off loopback. A wrong or missing
//! token gets 401 and changes nothing.
//!
//! The listener is hardened like the public one, since reads need no
//! token: each socket has the data plane's watchdog (`header_read_timeout`
//! for a head, `keepalive_timeout` idle, `body_idle_timeout` for a blocked
//! write), hyper has the same head limits, a request body must arrive
//! within `body_idle_timeout`, and at most [`MAX_CONNECTIONS`] connections
//! are open at once: beyond that the kernel's accept queue holds them,
//! which costs the process no file descriptor. So the admin listener
//! takes at most that many of the process's descriptors, and the rest stay
//! the data plane's.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

pub mod metrics;
mod views;

pub use views::fleet_json;
use views::{dashboard_data, dashboard_page, mode_json};

use crate::admission::Mode;
use crate::conn::{Activity, Watchdog};
use crate::reload::{self, Outcome};
use crate::runtime::{Override, Shared};

/// Request bodies larger than this are refused: these are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

pub use crate::runtime::ADMIN_CONNECTIONS as MAX_CONNECTIONS;

/// Admin state: the shared state and whether lifeboat is draining.
pub struct AdminState {
    /// The live state.
    pub shared: Arc<Shared>,
    /// Set when shutdown begins: `/readyz` turns 503.
    pub draining: AtomicBool,
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let slots = state.shared.admin_slots.clone();
    loop {
        // The slot first, the accept second: past the cap, new connections
        // wait in the kernel's queue, not in the process's fd table.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(connection(stream, state.clone(), slot));
    }
}

/// One admin connection, under the data plane's deadlines.
async fn connection(stream: TcpStream, state: Arc<AdminState>, _slot: OwnedSemaphorePermit) {
    let limits = state.shared.runtime().config.limits.clone();
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let io = Watchdog::new(
        stream,
        activity.clone(),
        limits.header_read_timeout,
        limits.keepalive_timeout,
        limits.body_idle_timeout,
    );
    let svc = hyper::service::service_fn(move |req| {
        // In progress from dispatch: the watchdog lifts the head and idle
        // deadlines while a request is being answered.
        let busy = activity.begin();
        let state = state.clone();
        async move {
            let resp = handle(state, req).await;
            drop(busy);
            resp
        }
    });
    let _ = crate::conn::builder(&limits)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Resp {
    reply(status, "application/json", format!("{v}\n"))
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_reply(status, json!({ "error": msg }))
}

async fn handle(state: Arc<AdminState>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let shared = &state.shared;
    let path = req.uri().path().to_string();
    if req.method() == Method::POST && cross_site(&req) {
        return Ok(error(
            StatusCode::FORBIDDEN,
            "a browser on another site may not act here",
        ));
    }
    if req.method() == Method::POST && !authorised(shared, &req) {
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ));
    }
    Ok(match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics::render(shared),
        ),
        (Method::GET, "/" | "/dashboard") => dashboard_page(),
        (Method::GET, "/dashboard/data") => json_reply(
            StatusCode::OK,
            dashboard_data(shared, req.uri().query().unwrap_or("")),
        ),
        (Method::GET, "/fleet") => json_reply(StatusCode::OK, fleet_json(shared)),
        (Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
        (Method::GET, "/readyz") if state.draining.load(Ordering::Relaxed) => {
            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
        }
        (Method::GET, "/readyz") => reply(StatusCode::OK, "text/plain", "ready\n"),
        (Method::GET, "/mode") => json_reply(StatusCode::OK, mode_json(shared)),
        (Method::POST, "/mode") => match body::<ModeRequest>(shared, req).await {
            Ok(m) => set_mode(shared, m),
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        (Method::POST, "/message") => match body::<MessageRequest>(shared, req).await {
            Ok(m) if m.stage.as_deref().is_some_and(|s| !STAGES.contains(&s)) => error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "stage must be one of {}, found \"{}\"",
                    STAGES.join(", "),
                    m.stage.unwrap_or_default()
                ),
            ),
            Ok(m) => match fleet_scope(shared, m.scope.as_deref()) {
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
                Ok(fleet) => {
                    shared.post_update(&m.text, m.stage.as_deref(), m.signed.as_deref());
                    if let Some(link) = fleet {
                        link.publish_message(crate::fleet::MessageDoc {
                            id: link.next_id(),
                            text: m.text.clone(),
                            stage: m.stage.clone(),
                            signed: m.signed.clone(),
                            by: link.instance.clone(),
                            posted_at_ms: crate::dashboard::unix_ms(std::time::SystemTime::now()),
                        });
                    }
                    json_reply(
                        StatusCode::OK,
                        json!({
                            "message": m.text, "stage": m.stage, "signed": m.signed,
                            "scope": if fleet.is_some() { "fleet" } else { "instance" },
                        }),
                    )
                }
            },
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        (Method::GET, "/config") => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{:#?}\n", redacted(&shared.runtime().config)),
        ),
        (Method::POST, "/reload") => match reload::reload(shared, "admin") {
            Outcome::Accepted {
                generation,
                needs_restart,
            } => json_reply(
                StatusCode::OK,
                json!({ "generation": generation, "needs_restart": needs_restart }),
            ),
            Outcome::Rejected(e) => {
                json_reply(StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": e }))
            }
            Outcome::NoFile => error(
                StatusCode::CONFLICT,
                "lifeboat was not started from a config file",
            ),
        },
        (
            _,
            "/" | "/dashboard" | "/dashboard/data" | "/fleet" | "/metrics" | "/healthz" | "/readyz"
            | "/mode" | "/message" | "/config" | "/reload",
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    })
}

/// A POST a browser sent from another site's page: its `Origin` is not
/// this listener (or the browser says so). Such a page could otherwise
/// flip the boards on a loopback admin listener without a token. curl and
/// `lifeboat ctl` send no `Origin`; the dashboard's is this listener.
fn cross_site(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    if h.get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    !authority.eq_ignore_ascii_case(host)
}

fn authorised(shared: &Shared, req: &Request<Incoming>) -> bool {
    let rt = shared.runtime();
    let Some(token) = rt.config.admin.token.as_deref() else {
        return true;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare fixed-length digests in constant time: neither the token's
    // bytes nor its length can be learnt from how long a refusal takes.
    let digest = |s: &str| <[u8; 32]>::from(sha2::Sha256::digest(s.as_bytes()));
    bool::from(digest(given).ct_eq(&digest(token)))
}

/// The configuration as `GET /config` shows it (no token needed): every
/// secret out. The admin token and webhook URLs redact themselves in
/// `Debug`; credentials in the servers' URLs are cut here.
fn redacted(config: &crate::config::Config) -> crate::config::Config {
    let mut shown = config.clone();
    for server in &mut shown.origin.servers {
        if let Some((_, host)) = server.authority.as_str().rsplit_once('@') {
            server.authority = format!("REDACTED@{host}")
                .parse()
                .unwrap_or_else(|_| http::uri::Authority::from_static("redacted"));
        }
    }
    shown
}

/// Reads a small JSON body, which must arrive whole within the body idle
/// timeout (the watchdog does not time a request in progress).
async fn body<T: for<'de> Deserialize<'de>>(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<T, String> {
    let limit = shared.runtime().config.limits.body_idle_timeout;
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let bytes = tokio::time::timeout(limit, collect)
        .await
        .map_err(|_| format!("the body did not arrive within {limit:?}"))?
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
    ttl: Option<String>,
    reason: Option<String>,
    /// `fleet` (the default with `[fleet]`) or `instance`.
    scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageRequest {
    text: String,
    /// investigating, identified, monitoring or resolved.
    stage: Option<String>,
    /// Who signs it (default: the apology page's signature).
    signed: Option<String>,
    /// `fleet` (the default with `[fleet]`) or `instance`.
    scope: Option<String>,
}

/// The fleet link to hand a post to: with `[fleet]`, unless the operator
/// asked for this instance only.
fn fleet_scope<'a>(
    shared: &'a Shared,
    scope: Option<&str>,
) -> Result<Option<&'a crate::fleet::Link>, String> {
    match scope {
        None | Some("fleet") => Ok(shared.fleet.as_deref()),
        Some("instance") => Ok(None),
        Some(other) => Err(format!(
            "scope must be \"fleet\" or \"instance\", not \"{other}\""
        )),
    }
}

/// The longest override TTL.
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// Statuspage's incident stages, in order.
pub const STAGES: [&str; 4] = ["investigating", "identified", "monitoring", "resolved"];

fn set_mode(shared: &Shared, m: ModeRequest) -> Resp {
    let mode = match m.mode.as_str() {
        "degraded" => Some(Mode::Degraded),
        "normal" => Some(Mode::Normal),
        "auto" => None,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("mode must be \"degraded\", \"normal\" or \"auto\", not \"{other}\""),
            );
        }
    };
    let ttl = match m.ttl.as_deref().map(humantime::parse_duration).transpose() {
        // An override longer than a year is a typo, and past what Redis
        // and the clock arithmetic take.
        Ok(Some(t)) if t > MAX_TTL => {
            return error(StatusCode::BAD_REQUEST, "ttl must be at most a year");
        }
        Ok(t) => t,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ttl must be a duration like \"30m\"",
            );
        }
    };
    let fleet = match fleet_scope(shared, m.scope.as_deref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let reason = m.reason.unwrap_or_else(|| "no reason given".into());
    if let Some(link) = fleet {
        let expires = ttl.map(|t| {
            crate::dashboard::unix_ms(std::time::SystemTime::now())
                + u64::try_from(t.as_millis()).unwrap_or(u64::MAX / 2)
        });
        link.publish_override(crate::fleet::OverrideDoc {
            id: link.next_id(),
            mode: m.mode.clone(),
            reason: reason.clone(),
            ttl: m.ttl.clone(),
            expires_at_ms: expires,
            by: link.instance.clone(),
            posted_at_ms: crate::dashboard::unix_ms(std::time::SystemTime::now()),
        });
    }
    let o = mode.map(|mode| Override {
        mode,
        until: ttl.map(|t| tokio::time::Instant::now() + t),
        reason,
    });
    crate::control::set_override(shared, o, m.ttl.clone());
    let mut answer = mode_json(shared);
    answer["scope"] = json!(if fleet.is_some() { "fleet" } else { "instance" });
    json_reply(StatusCode::OK, answer)
}
