// The dashboard's pages, drawn from the REST API with the session cookie and its CSRF token.
// Every value from the server is set as text (`textContent`, attributes), never as markup, so
// a template's log line or a job's result cannot run script here.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const me = document.body.dataset;
const operator = me.operator === "true";
const app = document.getElementById("app");

/** An element: `attrs` are properties/attributes (`on*` functions become listeners). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** A REST call as the signed-in customer (or operator). */
async function api(method, path, body) {
  const headers = { "x-csrf-token": csrf };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: { message: text.slice(0, 300) } };
  }
  // The session ended (signed out elsewhere, expired, password changed): sign in again.
  if (response.status === 401) location.assign("/signin");
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

const json = (value) => JSON.stringify(value, null, 2);
const when = (ts) => (ts ? new Date(ts).toLocaleString() : "—");
const FINISHED = ["succeeded", "failed", "cancelled"];

function problem(error) {
  const box = el("div", { class: "error", role: "alert" }, error.message);
  for (const d of error.body?.error?.details || []) {
    if (d && d.field) box.append(el("div", {}, `${d.field}: ${d.problem}`));
  }
  return box;
}

function show(title, ...content) {
  document.title = `${title} · Vidfarm`;
  app.replaceChildren(el("h1", { text: title }), ...content);
}

function nav() {
  const links = operator && !me.customerId
    ? [["/app/platform", "Platform"], ["/app/admin", "Template versions"]]
    : [["/", "Overview"], ["/app/jobs", "Jobs"], ["/app/templates", "Templates"], ["/app/files", "Files"],
       ["/app/billing", "Billing"], ["/app/keys", "API keys"], ["/app/provider-keys", "Provider keys"],
       ["/app/webhooks", "Webhooks"], ["/account", "Account"]];
  document.getElementById("nav").replaceChildren(
    ...links.map(([href, label]) =>
      el("a", { href, "aria-current": location.pathname === href ? "page" : null }, label)),
  );
}

// ---- Overview ---------------------------------------------------------------------------

async function overview() {
  const [usage, running, waiting] = await Promise.all([
    api("GET", "/billing/usage"),
    api("GET", "/jobs?status=running&limit=20"),
    api("GET", "/jobs?status=waiting_for_human&limit=20"),
  ]);
  const limits = usage.limits || {};
  const cards = el("dl", { class: "cards" },
    el("div", {}, el("dt", {}, "May still be charged"), el("dd", { id: "balance" }, limits.available_usd ? `$${limits.available_usd}` : "no limit")),
    el("div", {}, el("dt", {}, "Charged this month"), el("dd", {}, `$${limits.charged_this_month_usd ?? usage.total.charge_usd}`)),
    el("div", {}, el("dt", {}, "Held for running work"), el("dd", {}, `$${limits.held_usd ?? "0"}`)),
    el("div", {}, el("dt", {}, "Running jobs"), el("dd", { id: "running-count" }, running.jobs.length)),
    el("div", {}, el("dt", {}, "Waiting for you"), el("dd", {}, waiting.jobs.length)),
  );
  show(`Hello, ${me.customerName}`, cards,
    el("h2", {}, "Running"), jobTable(running.jobs),
    el("h2", {}, "Waiting for an answer"), jobTable(waiting.jobs),
    el("h2", {}, "Usage this month"), usageChart(usage.days));
}

/** Charges per day as bars (an SVG drawn from the numbers; no chart library). */
function usageChart(days) {
  if (!days.length) return el("p", {}, "No charges yet this month.");
  const byDay = new Map();
  for (const d of days) byDay.set(d.day, (byDay.get(d.day) || 0) + d.charge_nusd);
  const entries = [...byDay.entries()];
  const max = Math.max(...entries.map(([, v]) => v), 1);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${entries.length * 24} 100`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Charges per day");
  svg.classList.add("chart");
  entries.forEach(([day, value], i) => {
    const bar = document.createElementNS(ns, "rect");
    const h = Math.max(1, (value / max) * 95);
    bar.setAttribute("x", i * 24 + 2);
    bar.setAttribute("y", 100 - h);
    bar.setAttribute("width", 20);
    bar.setAttribute("height", h);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${day}: $${(value / 1e9).toFixed(4)}`;
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

// ---- Jobs -------------------------------------------------------------------------------

function jobLink(job) {
  return el("a", { href: `/app/jobs/${encodeURIComponent(job.template_id)}/${encodeURIComponent(job.job_id)}` }, job.job_id);
}

function jobTable(jobs) {
  if (!jobs.length) return el("p", { class: "empty" }, "No jobs.");
  return el("table", {},
    el("thead", {}, el("tr", {}, ...["Job", "Template", "Operation", "Tracer", "Status", "Progress", "Created"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...jobs.map((job) => el("tr", { "data-job-id": job.job_id },
      el("td", {}, jobLink(job)),
      el("td", {}, job.template_id),
      el("td", {}, job.operation_name),
      el("td", {}, job.tracer),
      el("td", {}, el("span", { class: `status ${job.status}` }, job.status)),
      el("td", {}, el("progress", { max: 1, value: job.progress })),
      el("td", {}, when(job.created_at)),
    ))),
  );
}

async function jobs() {
  const params = new URLSearchParams(location.search);
  const statuses = ["", "queued", "running", "waiting_for_child", "waiting_for_human", "succeeded", "failed", "cancelled"];
  const filters = el("form", { class: "filters", role: "search" },
    el("label", { for: "f-status" }, "Status"),
    el("select", { id: "f-status", name: "status" }, ...statuses.map((s) =>
      el("option", { value: s, selected: params.get("status") === s }, s || "any"))),
    el("label", { for: "f-template" }, "Template"),
    el("input", { id: "f-template", name: "template_id", value: params.get("template_id") || "" }),
    el("label", { for: "f-tracer" }, "Tracer"),
    el("input", { id: "f-tracer", name: "tracer", value: params.get("tracer") || "" }),
    el("button", { type: "submit" }, "Filter"),
  );
  const list = el("div", { id: "job-list", "aria-live": "polite" });
  const more = el("p");
  show("Jobs", filters, list, more);
  const query = new URLSearchParams();
  for (const name of ["status", "template_id", "tracer", "before"]) if (params.get(name)) query.set(name, params.get(name));
  const draw = async () => {
    const page = await api("GET", `/jobs?${query}`);
    list.replaceChildren(jobTable(page.jobs));
    const next = new URLSearchParams(query);
    if (page.next_before) next.set("before", page.next_before);
    more.replaceChildren(page.next_before ? el("a", { href: `/app/jobs?${next}` }, "Older jobs →") : "");
  };
  await draw();
  // The first page follows new jobs and status changes while it is open.
  if (!params.get("before")) every(2000, draw);
}

let timers = [];
function every(ms, fn) {
  timers.push(setInterval(() => fn().catch(() => {}), ms));
}

// ---- One job ----------------------------------------------------------------------------

/** The host's own file URLs, on this page's origin (the configured public URL may name
 * another way in to the same host). */
function local(url) {
  try {
    const parsed = new URL(url, location.href);
    if (parsed.pathname.startsWith("/files/")) return parsed.pathname + parsed.search;
    return parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function preview(artifact) {
  const type = artifact.content_type || "";
  // Only the host's own files and https URLs are shown; anything else stays a name.
  const url = artifact.url && local(artifact.url);
  if (!url) return el("span", {}, artifact.key);
  artifact = { ...artifact, url };
  if (type.startsWith("video/")) return el("video", { controls: true, preload: "metadata", src: artifact.url, class: "preview" });
  if (type.startsWith("image/")) return el("img", { src: artifact.url, alt: artifact.key, class: "preview" });
  if (type.startsWith("audio/")) return el("audio", { controls: true, src: artifact.url });
  const box = el("pre", { class: "preview" }, "…");
  if ((type.startsWith("text/") || type.includes("json")) && url.startsWith("/files/")) {
    fetch(artifact.url, { credentials: "same-origin" }).then((r) => r.text()).then((t) => { box.textContent = t.slice(0, 20000); });
  } else box.replaceChildren(el("a", { href: artifact.url }, `Download ${artifact.key}`));
  return box;
}

/** Previews of what a result links to: any `{url}` whose key or path names a media file. */
function resultPreviews(value, out = []) {
  if (Array.isArray(value)) value.forEach((v) => resultPreviews(v, out));
  else if (value && typeof value === "object") {
    if (typeof value.url === "string" && local(value.url)) {
      const name = String(value.key || value.output_key || local(value.url).split("?")[0]).toLowerCase();
      const type = value.content_type || (/\.mp4$/.test(name) ? "video/mp4" : /\.(png|jpe?g|webp|gif)$/.test(name) ? "image/*" : /\.(mp3|wav)$/.test(name) ? "audio/*" : "");
      if (type) out.push(preview({ url: value.url, key: name, content_type: type }));
    }
    Object.values(value).forEach((v) => resultPreviews(v, out));
  }
  return out;
}

function timelineItem(event) {
  const item = el("li", { class: `event ${event.level}` },
    el("time", {}, when(event.timestamp)), " ",
    el("span", { class: "level" }, event.level), " ",
    el("span", { class: "message" }, event.message));
  if (event.progress !== null && event.progress !== undefined) item.append(" ", el("progress", { max: 1, value: event.progress }));
  if (event.metadata && Object.keys(event.metadata).length) item.append(el("pre", { class: "metadata" }, json(event.metadata)));
  if (event.artifact) item.append(el("div", { class: "artifact" }, preview(event.artifact)));
  return item;
}

async function job(templateId, jobId) {
  const base = `/templates/${encodeURIComponent(templateId)}/jobs/${encodeURIComponent(jobId)}`;
  let current = await api("GET", base);
  const status = el("span", { id: "job-status", class: `status ${current.status}` }, current.status);
  const bar = el("progress", { id: "job-progress", max: 1, value: current.progress, "aria-label": "Progress" });
  const actions = el("div", { class: "actions" });
  const result = el("section", { id: "job-result", "aria-live": "polite" });
  const timeline = el("ol", { id: "timeline", class: "timeline", "aria-live": "polite" });
  const errors = el("div");
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Template"), el("dd", {}, `${current.template_id} ${current.template_version}`),
    el("dt", {}, "Operation"), el("dd", {}, current.operation_name),
    el("dt", {}, "Tracer"), el("dd", {}, current.tracer),
    el("dt", {}, "Created"), el("dd", {}, when(current.created_at)),
    el("dt", {}, "Parent"), el("dd", {}, current.parent_job_id ? el("a", { href: `/app/jobs/${encodeURIComponent(templateId)}/${encodeURIComponent(current.parent_job_id)}` }, current.parent_job_id) : "—"),
  );
  const children = el("section", { id: "children" });
  show(`Job ${jobId}`, el("p", {}, "Status: ", status, " ", bar), facts, errors, actions, result, children,
    el("h2", {}, "Payload"), el("pre", {}, json(current.payload)),
    el("h2", {}, "Timeline"), timeline);
  const drawChildren = async () => {
    const page = await api("GET", `/jobs?parent_job_id=${encodeURIComponent(jobId)}&limit=100`);
    children.replaceChildren(...(page.jobs.length ? [el("h2", {}, `Children (${page.jobs.length})`), jobTable(page.jobs)] : []));
  };
  await drawChildren();

  // Answers can arrive out of order (a reload asked before a live event's may answer after
  // it): only an answer asked after the one shown replaces it, so a job never seems to go back.
  let asked = 0, shown = 0;
  const apply = (seq, job) => {
    if (seq <= shown) return false;
    shown = seq;
    current = job;
    draw();
    return true;
  };
  const reload = async (method = "GET", path = base) => {
    const seq = ++asked;
    apply(seq, await api(method, path));
  };

  const act = (label, fn) => el("button", { type: "button", onclick: async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    errors.replaceChildren();
    try { await fn(); } catch (e) { errors.replaceChildren(problem(e)); } finally { button.disabled = false; }
  } }, label);
  const draw = () => {
    status.textContent = current.status;
    status.className = `status ${current.status}`;
    bar.value = current.progress ?? 0;
    // The buttons and the answer form change with the status only: a redraw for progress must
    // not wipe an answer being typed.
    if (actions.dataset.status === current.status) return drawResult();
    actions.dataset.status = current.status;
    actions.replaceChildren();
    if (!FINISHED.includes(current.status)) {
      actions.append(act("Cancel job", () => reload("POST", `${base}/cancel`)));
    } else if (current.status !== "succeeded") {
      actions.append(act("Retry job", async () => {
        const retried = await api("POST", `${base}/retry`, {});
        navigate(`/app/jobs/${encodeURIComponent(templateId)}/${encodeURIComponent(retried.job_id)}`);
      }));
    }
    if (current.status === "waiting_for_human") actions.append(humanForm(base, current.waiting_for?.human, errors, () => reload()));
    drawResult();
  };
  const drawResult = () => {
    const children = current.waiting_for?.children;
    result.replaceChildren(
      children && children.length ? el("p", {}, `Waiting for ${children.length} child job(s).`) : "",
      current.result !== null && current.result !== undefined ? el("div", {}, el("h2", {}, "Result"), el("pre", { id: "result-json" }, json(current.result)), ...resultPreviews(current.result)) : "",
      current.error ? el("div", {}, el("h2", {}, "Error"), el("pre", { class: "error" }, json(current.error))) : "",
    );
  };
  draw();

  // The timeline and the status, live: the same event stream API customers use.
  const stream = new EventSource(`${base}/events`);
  streams.push(stream);
  stream.addEventListener("log", (e) => timeline.append(timelineItem(JSON.parse(e.data))));
  stream.addEventListener("status", async (e) => {
    const s = JSON.parse(e.data);
    if (s.status === "waiting_for_human" || FINISHED.includes(s.status)) await reload();
    else apply(++asked, { ...current, ...s });
    await drawChildren();
  });
  stream.addEventListener("end", () => stream.close());
}

function humanForm(base, prompt, errors, done) {
  const answer = el("textarea", { id: "human-answer", name: "answer", rows: 4 }, "{}");
  answer.addEventListener("input", () => answer.setCustomValidity(""));
  return el("form", { class: "human", onsubmit: async (e) => {
    e.preventDefault();
    let body;
    try { body = JSON.parse(answer.value); } catch { answer.setCustomValidity("The answer must be JSON"); answer.reportValidity(); return; }
    try {
      await api("POST", `${base}/resume`, body);
      await done();
    } catch (error) { errors.replaceChildren(problem(error)); }
  } },
  el("h2", {}, "The job asks"), el("pre", {}, json(prompt)),
  el("label", { for: "human-answer" }, "Your answer (JSON)"), answer,
  el("button", { type: "submit" }, "Send answer"));
}

// ---- Templates and their operation forms --------------------------------------------------

async function templates() {
  const list = await api("GET", "/templates");
  show("Templates", el("ul", { class: "templates" }, ...list.templates.map((t) => el("li", {},
    el("a", { href: `/app/templates/${encodeURIComponent(t.id)}` }, t.id), ` ${t.version} — ${t.description}`,
    el("div", { class: "ops" }, t.operations.join(" · "))))));
}

const FILE_FIELD = /(url|src|image|video|audio|file|logo|poster|music|voice)$/i;

/** `schema` with its `$ref` followed (to the operation schema's `$defs`/`definitions`) and a
 * nullable `anyOf`/`oneOf` (schemars' `Option<T>`) reduced to its one non-null branch. */
function resolve(schema, root) {
  for (let depth = 0; schema && depth < 16; depth++) {
    if (typeof schema.$ref === "string") {
      const path = schema.$ref.replace(/^#\//, "").split("/");
      const target = path.reduce((node, part) => node?.[part], root);
      const { $ref, ...rest } = schema;
      schema = { ...(target || {}), ...rest };
      continue;
    }
    const branches = schema.anyOf || schema.oneOf;
    if (Array.isArray(branches)) {
      const real = branches.filter((b) => b.type !== "null");
      if (real.length === 1) {
        const { anyOf, oneOf, ...rest } = schema;
        schema = { ...real[0], ...rest, nullable: true };
        continue;
      }
    }
    return schema;
  }
  return schema || {};
}

/** Inputs for a JSON Schema; returns [node, read()] where read() gives the value
 * (`undefined` when the customer left an optional field alone). */
function schemaInput(schema, name, label, required, root = schema) {
  schema = resolve(schema || {}, root);
  const id = `f-${name.replace(/[^a-z0-9_-]/gi, "-")}`;
  const title = el("label", { for: id }, label + (required ? " *" : ""));
  const hint = schema.description ? el("small", { class: "hint" }, schema.description) : "";
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.enum) {
    const select = el("select", { id, name }, ...(required ? [] : [el("option", { value: "" }, "—")]),
      ...schema.enum.filter((v) => v !== null).map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
    return [el("div", { class: "field" }, title, select, hint), () => (select.value === "" ? undefined : JSON.parse(select.value))];
  }
  if (type === "object" && schema.properties) {
    const parts = Object.entries(schema.properties).map(([key, sub]) =>
      [key, schemaInput(sub, `${name}.${key}`, key, (schema.required || []).includes(key), root)]);
    const set = el("fieldset", {}, el("legend", {}, label), hint, ...parts.map(([, [node]]) => node));
    return [set, () => {
      const out = {};
      for (const [key, [, read]] of parts) { const v = read(); if (v !== undefined) out[key] = v; }
      // An optional object left empty is left out, not sent as `{}`.
      return !required && Object.keys(out).length === 0 ? undefined : out;
    }];
  }
  if (type === "boolean") {
    if (required) {
      const box = el("input", { id, name, type: "checkbox", checked: schema.default === true });
      return [el("div", { class: "field check" }, box, title, hint), () => box.checked];
    }
    // Optional: yes, no, or leave it to the template's default.
    const select = el("select", { id, name }, el("option", { value: "" }, "default"),
      el("option", { value: "true" }, "yes"), el("option", { value: "false" }, "no"));
    return [el("div", { class: "field" }, title, select, hint), () => (select.value === "" ? undefined : select.value === "true")];
  }
  if (type === "integer" || type === "number") {
    const input = el("input", { id, name, type: "number", step: type === "integer" ? 1 : "any", required,
      min: schema.minimum, max: schema.maximum, value: schema.default ?? "" });
    return [el("div", { class: "field" }, title, input, hint), () => (input.value === "" ? undefined : Number(input.value))];
  }
  if (type === "string") {
    const long = !schema.maxLength || schema.maxLength > 200;
    const input = long && !FILE_FIELD.test(name)
      ? el("textarea", { id, name, rows: 3, required, maxlength: schema.maxLength }, schema.default ?? "")
      : el("input", { id, name, required, maxlength: schema.maxLength, value: schema.default ?? "" });
    const node = el("div", { class: "field" }, title, input, hint);
    if (FILE_FIELD.test(name)) node.append(uploader(input, id, node));
    return [node, () => (input.value === "" ? undefined : input.value)];
  }
  // Arrays and anything else: JSON text.
  const area = el("textarea", { id, name, rows: 4, required }, schema.default !== undefined ? json(schema.default) : "");
  return [el("div", { class: "field" }, title, area, el("small", { class: "hint" }, "JSON"), hint), () => {
    if (area.value.trim() === "") return undefined;
    try { return JSON.parse(area.value); } catch { throw new Error(`${label}: must be JSON`); }
  }];
}

/** A file input that uploads into the workspace and fills the field with its reference. */
function uploader(input, id, field) {
  const file = el("input", { type: "file", id: `${id}-file`, "aria-label": "Upload a file into the workspace" });
  const status = el("small", { class: "hint", role: "status" });
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    status.textContent = "Uploading…";
    try {
      const key = `uploads/${Date.now()}-${chosen.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
      const signed = await api("POST", "/files/sign-upload", { key, content_type: chosen.type || "application/octet-stream", size: chosen.size });
      const put = await fetch(local(signed.url) || signed.url, { method: "PUT", headers: signed.headers || {}, body: chosen });
      if (!put.ok) throw new Error(`the upload failed: HTTP ${put.status}`);
      input.value = `workspace:${key}`;
      status.textContent = "Uploaded.";
    } catch (error) {
      status.textContent = "";
      field.append(problem(error));
    }
  });
  return el("span", {}, file, status);
}

async function template(templateId) {
  const t = await api("GET", `/templates/${encodeURIComponent(templateId)}`);
  const sections = t.operations.map((op) => {
    const [fields, read] = schemaInput(op.input_schema, op.name, "Payload", true);
    const tracer = el("input", { id: `tracer-${op.name}`, name: "tracer", value: "dashboard", required: true });
    const errors = el("div");
    const form = el("form", { class: "operation", "data-operation": op.name, onsubmit: async (e) => {
      e.preventDefault();
      errors.replaceChildren();
      try {
        const created = await api("POST", `/templates/${encodeURIComponent(templateId)}/operations/${encodeURIComponent(op.name)}`,
          { tracer: tracer.value, payload: read() || {} });
        navigate(`/app/jobs/${encodeURIComponent(templateId)}/${encodeURIComponent(created.job_id)}`);
      } catch (error) { errors.replaceChildren(problem(error)); }
    } }, el("label", { for: `tracer-${op.name}` }, "Tracer"), tracer, fields, errors,
    el("button", { type: "submit" }, `Run ${op.name}`));
    return el("section", {}, el("h2", {}, op.name), el("p", {}, op.description),
      op.estimated_cost_usd ? el("p", {}, `Estimated cost: $${op.estimated_cost_usd}`) : "", form);
  });
  show(`${t.id} ${t.version}`, el("p", {}, t.description), ...sections, await configForm(t));
}

/** This customer's config of a template, as a form from its config schema. */
async function configForm(t) {
  const schema = t.config_schema;
  if (!schema || !schema.properties || !Object.keys(schema.properties).length) return "";
  const current = await api("GET", `/templates/${encodeURIComponent(t.id)}/config`);
  const [fields, read] = schemaInput(schema, "config", "Config", true);
  for (const [key, value] of Object.entries(current.config || {})) {
    const input = fields.querySelector(`#f-config-${CSS.escape(key)}`);
    if (input && typeof value !== "object") input.value = String(value);
  }
  const status = el("p", { role: "status" });
  const errors = el("div");
  return el("section", {}, el("h2", {}, "Your config of this template"),
    el("p", {}, "Every job you start from this template runs with it."),
    el("form", { id: "config-form", onsubmit: async (e) => {
      e.preventDefault();
      errors.replaceChildren();
      status.textContent = "";
      try {
        await api("POST", `/templates/${encodeURIComponent(t.id)}/config`, read() || {});
        status.textContent = "Saved.";
      } catch (error) { errors.replaceChildren(problem(error)); }
    } }, fields, errors, status, el("button", { type: "submit" }, "Save config")));
}

// ---- API keys ---------------------------------------------------------------------------

async function keys() {
  const list = await api("GET", "/customers/me/api-keys");
  const shown = el("div", { id: "new-key", "aria-live": "polite" });
  const label = el("input", { id: "key-label", name: "label", maxlength: 100 });
  // A session alone cannot make a lasting key: the account's password confirms it.
  const password = el("input", { id: "key-password", name: "password", type: "password", required: true, autocomplete: "current-password" });
  const errors = el("div");
  const form = el("form", { id: "new-key-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const created = await api("POST", "/customers/me/api-keys", { label: label.value || null, password: password.value });
      const curl = `curl -X POST ${location.origin}/templates/hello/operations/greet \\\n  -H 'vidfarm-user-id: ${me.customerId}' -H 'vidfarm-api-key: ${created.key}' \\\n  -H 'content-type: application/json' -d '{"tracer":"first","payload":{"name":"Ada"}}'`;
      await keys();
      document.getElementById("new-key").replaceChildren(
        el("p", { class: "notice" }, "Your new key — shown this once; store it now:"),
        el("pre", { id: "new-key-value" }, created.key),
        el("p", {}, `Customer id: ${me.customerId}`),
        el("pre", {}, curl));
    } catch (error) { errors.replaceChildren(problem(error)); }
  } }, el("label", { for: "key-label" }, "Label"), label,
    el("label", { for: "key-password" }, "Your password"), password, el("button", { type: "submit" }, "Create API key"));
  const rows = list.keys.map((k) => el("tr", { "data-key-id": k.id },
    el("td", {}, k.label || "—"), el("td", {}, `…${k.last_four}`), el("td", {}, when(k.created_at)),
    el("td", {}, when(k.last_used_at)), el("td", {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active"),
    el("td", {}, k.revoked_at ? "" : el("button", { type: "button", onclick: async () => {
      if (!confirm("Revoke this key? Calls made with it will fail.")) return;
      try {
        await api("DELETE", `/customers/me/api-keys/${encodeURIComponent(k.id)}`);
        await keys();
      } catch (error) { errors.replaceChildren(problem(error)); }
    } }, "Revoke"))));
  show("API keys", shown, form, errors, el("table", {},
    el("thead", {}, el("tr", {}, ...["Label", "Key", "Created", "Last used", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows)));
}

// ---- Operator: versions, activate and roll back -----------------------------------------------

async function admin() {
  const list = await api("GET", "/admin/templates");
  const errors = el("div");
  const rows = list.templates.map((t) => {
    const choice = el("select", { "aria-label": `Version of ${t.id}` }, ...t.versions.map((v) =>
      el("option", { value: v, selected: v === t.active_version }, v)));
    const run = (label, fn) => el("button", { type: "button", onclick: async () => {
      errors.replaceChildren();
      try { await fn(); await admin(); } catch (error) { errors.replaceChildren(problem(error)); }
    } }, label);
    const history = el("details", {}, el("summary", {}, "History"), el("ol", {}, ...(t.history || []).map((h) =>
      el("li", {}, `${when(h.at)} ${h.action} ${h.from ? `${h.from} → ` : ""}${h.to} by ${h.actor}`))));
    return el("tr", { "data-template-id": t.id },
      el("td", {}, t.id, history), el("td", { class: "active-version" }, t.active_version), el("td", {}, choice),
      el("td", {}, run("Activate", () => api("POST", `/admin/templates/${encodeURIComponent(t.id)}/activate`, { version: choice.value })),
        " ", run("Roll back", () => api("POST", `/admin/templates/${encodeURIComponent(t.id)}/rollback`, {}))));
  });
  show("Templates (operator)", errors, el("table", {},
    el("thead", {}, el("tr", {}, ...["Template", "Active", "Versions", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows)));
}

// ---- Provider keys ----------------------------------------------------------------------

async function providerKeys() {
  const list = await api("GET", "/customers/me/provider-keys");
  const errors = el("div");
  const field = (id, label, input) => el("div", { class: "field" }, el("label", { for: id }, label), input);
  const provider = el("select", { id: "pk-provider", name: "provider" },
    ...["openai", "gemini", "openrouter", "perplexity", "elevenlabs"].map((p) => el("option", { value: p }, p)));
  const secret = el("input", { id: "pk-secret", name: "secret", type: "password", autocomplete: "off", required: true, minlength: 8 });
  const label = el("input", { id: "pk-label", name: "label", maxlength: 100 });
  const weight = el("input", { id: "pk-weight", name: "weight", type: "number", min: 1, max: 1000, value: 1 });
  const form = el("form", { id: "provider-key-form", onsubmit: async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      await api("POST", "/customers/me/provider-keys", { provider: provider.value, secret: secret.value, label: label.value || undefined, weight: Number(weight.value) });
      await providerKeys();
    } catch (error) { errors.replaceChildren(problem(error)); }
  } }, field("pk-provider", "Provider", provider), field("pk-secret", "Secret", secret),
  field("pk-label", "Label", label), field("pk-weight", "Weight", weight), el("button", { type: "submit" }, "Add key"));
  const change = (k, body) => async () => {
    errors.replaceChildren();
    try {
      if (body === null) {
        if (!confirm("Remove this key?")) return;
        await api("DELETE", `/customers/me/provider-keys/${encodeURIComponent(k.id)}`);
      } else await api("PATCH", `/customers/me/provider-keys/${encodeURIComponent(k.id)}`, body);
      await providerKeys();
    } catch (error) { errors.replaceChildren(problem(error)); }
  };
  const rows = list.data.map((k) => el("tr", { "data-provider-key-id": k.id },
    el("td", {}, k.provider), el("td", {}, k.label || "—"), el("td", {}, k.secret_hint),
    el("td", { class: "key-status" }, k.status, k.cooldown_until ? ` until ${when(k.cooldown_until)}` : "", k.disabled_reason ? ` — ${k.disabled_reason}` : ""),
    el("td", {}, k.weight), el("td", {}, when(k.last_used_at)),
    el("td", {}, k.source === "customer" || !k.source ? [
      k.status === "paused"
        ? el("button", { type: "button", onclick: change(k, { status: "active" }) }, "Resume")
        : el("button", { type: "button", onclick: change(k, { status: "paused" }) }, "Pause"),
      " ", el("button", { type: "button", onclick: change(k, null) }, "Remove")] : "")));
  show("Provider keys", el("p", {}, "Your own AI provider keys: jobs call providers with them (encrypted at rest, never shown again)."),
    errors, form, el("table", {},
      el("thead", {}, el("tr", {}, ...["Provider", "Label", "Key", "State", "Weight", "Last used", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
}

// ---- Webhooks ---------------------------------------------------------------------------

async function webhooks() {
  const [destinations, deliveries] = await Promise.all([
    api("GET", "/customers/me/webhooks"),
    api("GET", "/customers/me/webhook-deliveries?limit=50"),
  ]);
  const errors = el("div");
  const shown = el("div", { "aria-live": "polite" });
  const url = el("input", { id: "wh-url", name: "url", type: "url", required: true, placeholder: "https://example.com/hooks/vidfarm" });
  const description = el("input", { id: "wh-description", name: "description", maxlength: 200 });
  // A destination receives every job's events from now on: the account's password confirms it.
  const password = el("input", { id: "wh-password", name: "password", type: "password", required: true, autocomplete: "current-password" });
  const run = (fn) => async () => {
    errors.replaceChildren();
    try { await fn(); } catch (error) { errors.replaceChildren(problem(error)); }
  };
  const form = el("form", { id: "webhook-form", onsubmit: async (e) => {
    e.preventDefault();
    await run(async () => {
      const created = await api("POST", "/customers/me/webhooks", { url: url.value, description: description.value || null, password: password.value });
      await webhooks();
      document.getElementById("webhook-secret").replaceChildren(
        el("p", { class: "notice" }, "Signing secret of the new destination — shown this once:"), el("pre", {}, created.secret));
    })();
  } }, el("label", { for: "wh-url" }, "URL"), url, el("label", { for: "wh-description" }, "Description"), description,
  el("label", { for: "wh-password" }, "Your password"), password, el("button", { type: "submit" }, "Add destination"));
  const destinationRows = destinations.data.map((d) => el("tr", { "data-destination-id": d.id },
    el("td", {}, d.url), el("td", {}, d.description || "—"), el("td", {}, d.status, d.disabled_reason ? ` — ${d.disabled_reason}` : ""),
    el("td", {},
      el("button", { type: "button", onclick: run(async () => { await api("POST", `/customers/me/webhooks/${encodeURIComponent(d.id)}/test`, {}); await webhooks(); }) }, "Send test event"), " ",
      el("button", { type: "button", onclick: run(async () => {
        if (!confirm("Remove this destination?")) return;
        await api("DELETE", `/customers/me/webhooks/${encodeURIComponent(d.id)}`);
        await webhooks();
      }) }, "Remove"))));
  const deliveryRows = deliveries.data.map((d) => el("tr", { "data-delivery-id": d.id },
    el("td", {}, when(d.created_at)), el("td", {}, d.event_type), el("td", {}, d.url),
    el("td", { class: "delivery-status" }, d.status), el("td", {}, d.attempt_count),
    el("td", {}, d.last_status ?? d.last_error ?? "—"),
    el("td", {}, el("details", {}, el("summary", {}, "Attempts"),
      el("ul", {}, ...d.attempts.map((a) => el("li", {}, `#${a.attempt} ${when(a.at)}: ${a.status_code ?? a.error ?? "—"} (${a.latency_ms ?? "?"} ms)`))),
      el("pre", {}, json(d.payload)))),
    el("td", {}, el("button", { type: "button", onclick: run(async () => { await api("POST", `/customers/me/webhook-deliveries/${encodeURIComponent(d.id)}/redeliver`, {}); await webhooks(); }) }, "Redeliver"))));
  show("Webhooks", errors, el("div", { id: "webhook-secret" }), shown, form,
    el("h2", {}, "Destinations"), el("table", {},
      el("thead", {}, el("tr", {}, ...["URL", "Description", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...destinationRows)),
    el("h2", {}, "Deliveries"), el("table", {},
      el("thead", {}, el("tr", {}, ...["Created", "Event", "URL", "State", "Attempts", "Last answer", "", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...deliveryRows)));
  every(3000, async () => {
    const fresh = await api("GET", "/customers/me/webhook-deliveries?limit=50");
    for (const d of fresh.data) {
      const cell = document.querySelector(`tr[data-delivery-id="${CSS.escape(d.id)}"] .delivery-status`);
      if (cell) cell.textContent = d.status;
    }
    if (fresh.data.some((d) => !document.querySelector(`tr[data-delivery-id="${CSS.escape(d.id)}"]`))) await webhooks();
  });
}

// ---- Billing ----------------------------------------------------------------------------

async function billing() {
  const usage = await api("GET", "/billing/usage");
  const limits = usage.limits || {};
  const byTemplate = new Map();
  for (const d of usage.days) byTemplate.set(d.template_id, (byTemplate.get(d.template_id) || 0) + d.charge_nusd);
  show("Billing",
    el("dl", { class: "cards" },
      el("div", {}, el("dt", {}, "Credit"), el("dd", {}, limits.credit_usd ?? "unlimited")),
      el("div", {}, el("dt", {}, "Monthly cap"), el("dd", {}, limits.monthly_cap_usd ?? "none")),
      el("div", {}, el("dt", {}, "Charged this month"), el("dd", {}, `$${limits.charged_this_month_usd ?? usage.total.charge_usd}`)),
      el("div", {}, el("dt", {}, "Held"), el("dd", {}, `$${limits.held_usd ?? "0"}`)),
      el("div", {}, el("dt", {}, "May still be charged"), el("dd", {}, limits.available_usd ? `$${limits.available_usd}` : "no limit"))),
    el("h2", {}, "Charges per day"), usageChart(usage.days),
    el("h2", {}, "Per day and template"), el("table", {},
      el("thead", {}, el("tr", {}, ...["Day", "Template", "Events", "Charged"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...usage.days.map((d) => el("tr", {}, el("td", {}, d.day), el("td", {}, d.template_id), el("td", {}, d.events), el("td", {}, `$${d.charge_usd}`))))),
    el("h2", {}, "Per template this period"), el("ul", {}, ...[...byTemplate.entries()].map(([t, v]) => el("li", {}, `${t}: $${(v / 1e9).toFixed(6)}`))));
}

// ---- Workspace files --------------------------------------------------------------------

async function files() {
  const list = await api("GET", "/customers/me/files");
  const errors = el("div");
  const picker = el("input", { id: "file-upload", type: "file" });
  const upload = el("form", { id: "file-form", onsubmit: async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    const chosen = picker.files[0];
    if (!chosen) return;
    try {
      const key = `uploads/${chosen.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
      const signed = await api("POST", "/files/sign-upload", { key, content_type: chosen.type || "application/octet-stream", size: chosen.size });
      const put = await fetch(local(signed.url) || signed.url, { method: "PUT", headers: signed.headers || {}, body: chosen });
      if (!put.ok) throw new Error(`the upload failed: HTTP ${put.status}`);
      await files();
    } catch (error) { errors.replaceChildren(problem(error)); }
  } }, el("label", { for: "file-upload" }, "Upload into the workspace"), picker, el("button", { type: "submit" }, "Upload"));
  const rows = list.files.map((f) => el("tr", { "data-file-key": f.key },
    el("td", {}, f.url && local(f.url) ? el("a", { href: local(f.url), download: f.key.split("/").pop() }, f.key) : f.key),
    el("td", {}, `workspace:${f.key}`), el("td", {}, f.size), el("td", {}, when(f.updated_at)),
    el("td", {}, el("button", { type: "button", onclick: async () => {
      if (!confirm(`Delete ${f.key}?`)) return;
      try {
        await api("DELETE", `/customers/me/files/${f.key.split("/").map(encodeURIComponent).join("/")}`);
        await files();
      } catch (error) { errors.replaceChildren(problem(error)); }
    } }, "Delete"))));
  show("Files", el("p", {}, `${list.stored_bytes} of ${list.quota_bytes} bytes of storage in use.`), errors, upload,
    el("table", {},
      el("thead", {}, el("tr", {}, ...["File", "Reference", "Bytes", "Changed", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
}

// ---- Operator: customers, queue and counters --------------------------------------------

/** Prometheus text as {name{labels}: value}. */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    const value = Number(line.slice(at + 1));
    if (Number.isFinite(value)) out.set(line.slice(0, at), value);
  }
  return out;
}

/** A small line of the last values (an SVG polyline). */
function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 24");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("spark");
  const max = Math.max(...values, 1);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * 100},${24 - (v / max) * 22}`).join(" "));
  svg.append(line);
  return svg;
}

async function adminOverview() {
  const [overview, metricsText] = await Promise.all([api("GET", "/admin/overview"), adminMetrics()]);
  const counters = el("table", { id: "counters" });
  const history = new Map();
  const drawCounters = (metrics) => {
    const rows = [];
    for (const [name, value] of metrics) {
      if (!/_total|jobs_|renders_|webhook|http_requests/.test(name) || name.includes("_bucket")) continue;
      const series = history.get(name) || [];
      series.push(value);
      if (series.length > 30) series.shift();
      history.set(name, series);
      const rates = series.slice(1).map((v, i) => Math.max(0, v - series[i]));
      rows.push(el("tr", {}, el("td", {}, name), el("td", {}, value), el("td", {}, rates.length ? sparkline(rates) : "")));
    }
    counters.replaceChildren(el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Counter"), el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Change per 5 s"))), el("tbody", {}, ...rows.slice(0, 40)));
  };
  drawCounters(parseMetrics(metricsText));
  const q = overview.queue;
  show("Platform (operator)",
    el("p", {}, el("a", { href: "/app/admin" }, "Templates and versions →")),
    el("dl", { class: "cards" },
      el("div", {}, el("dt", {}, "Queued jobs"), el("dd", { id: "queued" }, q.queued)),
      el("div", {}, el("dt", {}, "Running jobs"), el("dd", {}, q.running)),
      el("div", {}, el("dt", {}, "Waiting jobs"), el("dd", {}, q.waiting)),
      el("div", {}, el("dt", {}, "Renders queued or running"), el("dd", {}, q.renders))),
    el("h2", {}, "Customers"), el("table", { id: "customers" },
      el("thead", {}, el("tr", {}, ...["Customer", "Credit", "Monthly cap", "Caps (jobs / per min / renders)", "Stored", "Live keys", "Queued", "Running", "Waiting", "Renders"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...overview.customers.map((c) => el("tr", { "data-customer-id": c.id },
        el("td", {}, c.name, el("br"), el("small", {}, c.id)),
        el("td", {}, c.credit_usd ?? "unlimited"), el("td", {}, c.monthly_cap_usd ?? "none"),
        el("td", {}, `${c.max_concurrent_jobs ?? "default"} / ${c.jobs_per_minute ?? "default"} / ${c.max_concurrent_renders ?? "default"}`),
        el("td", {}, `${c.stored_bytes} of ${c.storage_quota_bytes ?? "default"}`),
        el("td", {}, c.live_keys), el("td", {}, c.queued), el("td", {}, c.running), el("td", {}, c.waiting), el("td", {}, c.renders))))),
    el("h2", {}, "Counters"), counters);
  every(5000, async () => drawCounters(parseMetrics(await adminMetrics())));
}

async function adminMetrics() {
  const response = await fetch("/admin/metrics", { credentials: "same-origin" });
  if (response.status === 401) location.assign("/signin");
  return response.ok ? response.text() : "";
}

// ---- Routing ----------------------------------------------------------------------------

let streams = [];
const routes = [
  [/^\/$/, overview],
  [/^\/app\/jobs$/, jobs],
  [/^\/app\/jobs\/([^/]+)\/([^/]+)$/, job],
  [/^\/app\/templates$/, templates],
  [/^\/app\/templates\/([^/]+)$/, template],
  [/^\/app\/keys$/, keys],
  [/^\/app\/admin$/, admin],
  [/^\/app\/platform$/, adminOverview],
  [/^\/app\/provider-keys$/, providerKeys],
  [/^\/app\/webhooks$/, webhooks],
  [/^\/app\/billing$/, billing],
  [/^\/app\/files$/, files],
];

async function route() {
  for (const t of timers) clearInterval(t);
  for (const s of streams) s.close();
  timers = [];
  streams = [];
  nav();
  const path = location.pathname;
  for (const [pattern, page] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    try {
      await page(...match.slice(1).map(decodeURIComponent));
    } catch (error) {
      show(error.status === 404 ? "Not found" : "Something went wrong", problem(error));
    }
    app.focus({ preventScroll: true });
    return;
  }
  show("Not found", el("p", {}, "No such page."));
}

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || link.target || event.ctrlKey || event.metaKey || link.getAttribute("href").startsWith("/account")) return;
  if (link.getAttribute("href").startsWith("/files/")) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
addEventListener("popstate", route);
if (operator && !me.customerId && location.pathname === "/") history.replaceState(null, "", "/app/platform");
route();
