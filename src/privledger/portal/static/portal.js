// Onboarding portal: plain fetch() calls to this node's REST API. Every value from the API is
// written with textContent, never as HTML.
"use strict";

// where the node's app is mounted: "" on a node of its own, "/t/<org>" on a tenant host
const ROOT = document.documentElement.dataset.root || "";
const API = `${ROOT}/api/v1/onboarding/applications`;
const REVIEW_KEY = `privledger-review-token${ROOT}`;  // one tenant's token is not another's

function $(id) { return document.getElementById(id); }

function show(element, visible) { element.hidden = !visible; }

function text(element, value) { element.textContent = value === null || value === undefined ? "—" : String(value); }

async function call(method, url, { body, headers } = {}) {
  const init = { method, headers: { ...(headers || {}) } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = payload.error ? payload.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return payload;
}

function fail(element, error) {
  text(element, error.message);
  show(element, true);
}

// ---- the applicant's page
function setUpApply() {
  $("apply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector("button");
    show($("apply-error"), false);
    const body = {
      orgName: $("orgName").value.trim(),
      contactName: $("contactName").value.trim(),
      contactEmail: $("contactEmail").value.trim(),
      adminAddress: $("adminAddress").value.trim(),
      nodeEndpoint: $("nodeEndpoint").value.trim(),
      nodePublicKey: $("nodePublicKey").value.trim(),
      requestedRoles: [...form.querySelectorAll("input[name=role]:checked")].map((box) => box.value),
    };
    button.disabled = true;
    try {
      const created = await call("POST", API, { body });
      text($("created-id"), created.applicationId);
      text($("created-secret"), created.trackingSecret);
      show($("apply-result"), true);
      $("track-id").value = created.applicationId;
      $("track-secret").value = created.trackingSecret;
      form.reset();
    } catch (error) {
      fail($("apply-error"), error);
    } finally {
      button.disabled = false;
    }
  });

  $("track-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show($("track-error"), false);
    show($("track-result"), false);
    const id = $("track-id").value.trim();
    if (!/^[0-9a-f]{32}$/.test(id)) {
      fail($("track-error"), new Error("an application id is 32 hexadecimal characters"));
      return;
    }
    try {
      const status = await call("GET", `${API}/${id}`, {
        headers: { "X-Tracking-Secret": $("track-secret").value },
      });
      renderStatus(status);
    } catch (error) {
      fail($("track-error"), error);
    }
  });
}

function renderStatus(status) {
  const label = $("track-status");
  text(label, status.status.replace("_", " "));
  label.className = `status ${status.status}`;
  const steps = $("track-steps");
  steps.replaceChildren();
  // an application ends approved, rejected, or expired when nobody decided it in time
  const ended = status.status === "rejected" || status.status === "expired";
  const final = ended ? status.status : "approved";
  const reached = {
    submitted: true,
    under_review: status.reviewStartedAt !== null,
    [final]: status.decidedAt !== null || status.status === "expired",
  };
  for (const [step, done] of Object.entries(reached)) {
    const item = document.createElement("li");
    item.textContent = step.replace("_", " ");
    if (done) item.className = "done";
    steps.append(item);
  }
  text($("track-org"), status.orgName);
  text($("track-reason"), status.reason);
  text($("track-org-id"), status.orgId);
  const txs = $("track-txs");
  txs.replaceChildren();
  for (const hash of status.txHashes) {
    const code = document.createElement("code");
    code.textContent = hash;
    txs.append(code, document.createElement("br"));
  }
  if (!status.txHashes.length) text(txs, null);
  show($("track-result"), true);
}

// ---- the consortium admin's page
function token() { return sessionStorage.getItem(REVIEW_KEY) || ""; }

function auth() { return { Authorization: `Bearer ${token()}` }; }

async function loadApplications() {
  show($("review-error"), false);
  const filter = $("filter").value;
  const url = filter ? `${API}?status=${encodeURIComponent(filter)}` : API;
  try {
    const rows = await call("GET", url, { headers: auth() });
    renderApplications(rows);
  } catch (error) {
    show($("applications"), false);
    fail($("review-error"), error);
  }
}

function cell(row, value, asCode = false) {
  const td = document.createElement("td");
  if (asCode) {
    const code = document.createElement("code");
    code.textContent = value;
    td.append(code);
  } else {
    text(td, value);
  }
  row.append(td);
  return td;
}

function actionButton(label, className, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  if (className) button.className = className;
  button.addEventListener("click", async () => {
    button.disabled = true;
    show($("review-error"), false);
    try {
      await action();
      await loadApplications();
    } catch (error) {
      fail($("review-error"), error);
      button.disabled = false;
    }
  });
  return button;
}

function renderApplications(rows) {
  const body = $("applications").querySelector("tbody");
  body.replaceChildren();
  for (const application of rows) {
    const row = document.createElement("tr");
    row.dataset.id = application.applicationId;
    cell(row, application.orgName);
    cell(row, `${application.contactName} <${application.contactEmail}>`);
    cell(row, application.adminAddress, true);
    cell(row, application.nodeEndpoint);
    cell(row, ["org_admin", ...application.requestedRoles].join(", "));
    cell(row, new Date(application.submittedAt).toLocaleString());
    const status = cell(row, application.status.replace("_", " "));
    status.className = `status ${application.status}`;
    const decision = cell(row, "");
    const open = application.status === "submitted" || application.status === "under_review";
    if (open) {
      const url = `${API}/${application.applicationId}`;
      const actions = document.createElement("div");
      actions.className = "actions";
      if (application.status === "submitted") {
        actions.append(actionButton("Start review", "secondary",
          () => call("POST", `${url}/review`, { headers: auth() })));
      }
      actions.append(actionButton("Approve", "",
        () => call("POST", `${url}/approve`, { headers: auth(), body: {} })));
      const reason = document.createElement("input");
      reason.placeholder = "reason for rejecting";
      reason.setAttribute("aria-label", "reason for rejecting");
      actions.append(actionButton("Reject", "danger",
        () => call("POST", `${url}/reject`, { headers: auth(), body: { reason: reason.value } })));
      decision.replaceChildren(actions, reason);
    } else {
      text(decision, application.status === "approved"
        ? `org ${application.orgId}` : application.reason);
    }
    body.append(row);
  }
  show($("applications"), rows.length > 0);
  show($("empty"), rows.length === 0);
}

function setUpReview() {
  $("token").value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(REVIEW_KEY, $("token").value.trim());
    loadApplications();
  });
  $("filter").addEventListener("change", () => { if (token()) loadApplications(); });
  if (token()) loadApplications();
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "apply") setUpApply();
  if (document.body.dataset.page === "review") setUpReview();
});
