//! `sandbox-probe`: a hostile template for tests. Each operation attacks one limit of the
//! sandbox; the host must fail that job with a precise error and carry on unharmed.

use vidfarm_guest::prelude::*;

/// A payload any operation accepts.
#[derive(Deserialize, Serialize, JsonSchema)]
struct Anything(Value);

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

fn echo(_: &Context, input: Anything) -> Result<Anything, TemplateError> {
    Ok(input)
}

fn spin(_: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn hog_memory(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    ctx.logger.info("allocating until refused", json!({}));
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[derive(Deserialize, JsonSchema)]
struct PanicInput {
    #[serde(default)]
    message: Option<String>,
}

fn panic(_: &Context, input: PanicInput) -> Result<Value, TemplateError> {
    panic!("{}", input.message.unwrap_or_else(|| "the probe panicked on purpose".into()));
}

fn flood_logs(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    for i in 0u64.. {
        ctx.logger.info("flooding", json!({ "i": i }));
        println!("stdout flood {i}");
    }
    unreachable!()
}

/// Every way out of the job's prefix we could think of; each must be refused.
const ESCAPES: &[&str] = &[
    "../escaped.txt",
    "../../../../../../tmp/vidfarm-escaped.txt",
    "/tmp/vidfarm-escaped.txt",
    "a/../../escaped.txt",
    "%2e%2e/escaped.txt",
    "%2E%2E%2Fescaped.txt",
    "..%2fescaped.txt",
    "..\\escaped.txt",
    "C:\\escaped.txt",
    "a/./../../escaped.txt",
    "",
    "a//b/../../..//escaped.txt",
    "nul\0byte.txt",
];

fn escape_storage(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let mut accepted = Vec::new();
    for key in ESCAPES {
        if ctx.storage.put_text(key, "escaped").is_ok() {
            accepted.push(format!("put {key}"));
        }
        if ctx.storage.get(key).is_ok() {
            accepted.push(format!("get {key}"));
        }
        if ctx.storage.read_workspace(key).is_ok() {
            accepted.push(format!("read-workspace {key}"));
        }
    }
    if accepted.is_empty() {
        Err(TemplateError::new("storage_invalid_key", "every escape attempt was refused")
            .with_details(json!({ "attempts": ESCAPES.len() })))
    } else {
        Ok(json!({ "escaped": accepted }))
    }
}

/// Render requests that would reach past the job: a bundle of the template's own (code
/// Chromium would run on the host), bundling at render time, host files and escaping keys as
/// sources, an output outside the job's prefix. Every one must be refused at once.
fn escape_render(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let composition = |serve_url: Option<&str>, entry_point: Option<&str>| RenderRequest {
        composition_id: "TitleCard".into(),
        serve_url: serve_url.map(String::from),
        entry_point: entry_point.map(String::from),
        output_key: None,
        input_props: json!({ "text": "x", "durationSeconds": 1 }).to_string(),
    };
    let spec = |src: &str| {
        json!({ "canvas": { "width": 320, "height": 240 }, "duration": 1,
                "backgrounds": [{ "src": src, "type": "image" }] })
    };
    let mut accepted = Vec::new();
    let attempts: Vec<(String, Result<RenderResult, TemplateError>)> = vec![
        ("foreign bundle".into(), ctx.remotion.render(&composition(Some("https://bundles.example.com/evil/"), None))),
        ("entry point".into(), ctx.remotion.render(&composition(None, Some("src/index.ts")))),
        ("host file".into(), ctx.remotion.render_spec(&spec("file:///etc/passwd"), None)),
        ("absolute path".into(), ctx.remotion.render_spec(&spec("/etc/passwd"), None)),
        ("escaping key".into(), ctx.remotion.render_spec(&spec("workspace:../../other/x.png"), None)),
        ("escaping output".into(), ctx.remotion.render_spec(&spec("workspace:in.png"), Some("../../../x.mp4"))),
    ];
    let total = attempts.len();
    for (what, outcome) in attempts {
        match outcome {
            Err(e) if e.code == "render_invalid_request" => {}
            other => accepted.push(json!({ "attempt": what, "outcome": format!("{:?}", other.map(|r| r.render_id)) })),
        }
    }
    if accepted.is_empty() {
        Err(TemplateError::new("render_refused", "every render escape was refused")
            .with_details(json!({ "attempts": total })))
    } else {
        Ok(json!({ "accepted": accepted }))
    }
}

fn fork_children(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    loop {
        ctx.jobs.enqueue_child("echo", &json!({ "fork": true }))?;
    }
}

#[derive(Deserialize, JsonSchema)]
struct Effects {
    /// How many rounds of effects.
    #[schemars(range(min = 1, max = 100))]
    steps: u32,
    /// Busy iterations between rounds (so a test can kill the host between effects).
    #[serde(default)]
    spin: u64,
    /// The cost each round records (USD).
    #[serde(default = "default_cost")]
    cost: f64,
    /// Log lines of each round (one when absent): a test varies them between runs of one job.
    #[serde(default)]
    log_lines: Vec<u32>,
}

fn default_cost() -> f64 {
    0.001
}

/// Rounds of effects — a charge, an artifact, a log — with CPU work between them: the crash
/// and shutdown tests count that each effect happened exactly once.
fn effects(ctx: &Context, input: Effects) -> Result<Value, TemplateError> {
    for step in 0..input.steps {
        ctx.billing.record(&BillingEvent {
            event_type: EventType::CpuEstimate,
            cost_usd: input.cost,
            charge_usd: None,
            provider: None,
            model: None,
            metadata: json!({ "step": step }).to_string(),
        })?;
        ctx.storage.put_text(&format!("steps/{step}.txt"), &format!("step {step}"))?;
        for line in 0..input.log_lines.get(step as usize).copied().unwrap_or(1) {
            ctx.logger.info("step done", json!({ "step": step, "line": line }));
        }
        let mut x = 0u64;
        for i in 0..input.spin {
            x = std::hint::black_box(x.wrapping_add(i));
        }
    }
    Ok(json!({ "steps": input.steps }))
}

/// The payload of `render-props`: a customer's props, passed to the operator's composition.
#[derive(Deserialize, JsonSchema)]
struct PropsRender {
    /// `Slideshow` or `TitleCard`.
    composition: String,
    props: Value,
}

/// Render the operator's composition with the customer's props as they are: whatever URLs
/// they name reach the renderer, which must treat them like any other outside input.
fn render_props(ctx: &Context, input: PropsRender) -> Result<Value, TemplateError> {
    let rendered = ctx.remotion.render(&RenderRequest {
        composition_id: input.composition,
        serve_url: None,
        entry_point: None,
        output_key: Some("props.mp4".into()),
        input_props: input.props.to_string(),
    })?;
    Ok(json!({ "render_id": rendered.render_id, "output_key": rendered.output_key }))
}

#[derive(Deserialize, JsonSchema)]
struct Spinners {
    #[schemars(range(min = 1, max = 10))]
    children: u32,
}

/// Enqueue `spin` children and wait for them: a parent waiting on running children.
fn spawn_spinners(ctx: &Context, input: Spinners) -> Result<Value, TemplateError> {
    let ids = (0..input.children).map(|_| ctx.jobs.enqueue_child("spin", &json!({}))).collect::<Result<Vec<_>, _>>()?;
    let results = ctx.jobs.await_children(&ids)?;
    Ok(json!({ "children": results.len() }))
}

/// A job that suspends until a human answers (no instance is held while it waits).
fn wait_for_human(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let answer: Value = ctx.jobs.await_human(&json!({ "question": "Go on?" }))?;
    Ok(json!({ "answer": answer }))
}

/// A parent waiting for one child that waits for a human: two suspended jobs, for measuring
/// what a host holds per waiting job.
fn await_waiting_child(ctx: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let child = ctx.jobs.enqueue_child("wait-for-human", &json!({}))?;
    let results = ctx.jobs.await_children(&[child])?;
    Ok(json!({ "children": results.len() }))
}

/// What the guest can see of the host through std: it must be nothing.
fn inspect_ambient(_: &Context, _: Nothing) -> Result<Value, TemplateError> {
    let root = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string());
    let passwd = std::fs::read("/etc/passwd").map(|b| b.len()).map_err(|e| e.to_string());
    let cwd = std::fs::read_dir(".").map(|d| d.count()).map_err(|e| e.to_string());
    let socket = std::net::TcpStream::connect("127.0.0.1:22").map(|_| ()).map_err(|e| e.to_string());
    let bind = std::net::TcpListener::bind("127.0.0.1:0").map(|_| ()).map_err(|e| e.to_string());
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Ok(json!({
        "env": std::env::vars().collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "read_dir_root": format!("{root:?}"),
        "read_etc_passwd": format!("{passwd:?}"),
        "read_dir_cwd": format!("{cwd:?}"),
        "tcp_connect": format!("{socket:?}"),
        "tcp_bind": format!("{bind:?}"),
        "now_ms": now,
        "random": std::collections::hash_map::RandomState::new().hash_one(1u8),
    }))
}

use std::hash::BuildHasher;

fn template() -> Template {
    Template::new(
        "sandbox-probe",
        env!("CARGO_PKG_VERSION"),
        "Attacks the sandbox, one limit per operation (tests only).",
    )
    .operation(Operation::new("echo", "Return the payload.", echo).webhooks())
    .operation(Operation::new("spin", "Loop forever.", spin))
    .operation(Operation::new("hog-memory", "Allocate until refused.", hog_memory))
    .operation(Operation::new("panic", "Panic with a message.", panic))
    .operation(Operation::new("flood-logs", "Log without end.", flood_logs))
    .operation(Operation::new("escape-storage", "Try to leave the job's storage prefix.", escape_storage))
    .operation(Operation::new("escape-render", "Try to render with what the job may not reach.", escape_render))
    .operation(Operation::new("fork-children", "Enqueue children without end.", fork_children))
    .operation(Operation::new("render-props", "Render a composition with the customer's props.", render_props))
    .operation(Operation::new("spawn-spinners", "Enqueue spinning children and wait for them.", spawn_spinners))
    .operation(Operation::new("effects", "Charge, store and log in rounds, with CPU work between.", effects))
    .operation(
        Operation::new("expensive", "Like effects, but declares a $2.50 cost estimate.", effects)
            .estimated_cost_usd(2.5),
    )
    .operation(Operation::new("inspect-ambient", "Report what of the host is visible.", inspect_ambient))
    .operation(Operation::new("wait-for-human", "Suspend until a human answers.", wait_for_human))
    .operation(Operation::new(
        "await-waiting-child",
        "Wait for a child that waits for a human.",
        await_waiting_child,
    ))
}

vidfarm_guest::export_template!(template);
