// Workflow console: plain fetch() calls to this node's REST API with the pasted token. Every value
// from the API is written with textContent, never as HTML.
"use strict";

// where the node's app is mounted: "" on a node of its own, "/t/<org>" on a tenant host
const ROOT = document.documentElement.dataset.root || "";
const API = `${ROOT}/api/v1`;
const KEY = `privledger-token${ROOT}`;  // a tab keeps one token per tenant

function $(id) { return document.getElementById(id); }

function cell(row, value) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "—" : String(value);
  return td;
}

async function call(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(payload.error ? payload.error.message : `HTTP ${response.status}`);
  }
  return payload;
}

function fail(id, error) {
  $(id).textContent = error.message;
  $(id).hidden = false;
}

function label(item) {
  return item.kind === "task_approval" ? `task ${item.taskId}` : `project ${item.projectId}`;
}

function details(item) {
  if (item.kind === "task_approval") return `uses dataset ${item.dataset}`;
  return `join “${item.projectName || "?"}”`;
}

// who may decide what: data owners approve task inputs, operators and org admins answer invitations
const DECIDES = { task_approval: ["data_owner"], project_invitation: ["operator", "org_admin"] };
let role = null;

function decisionButtons(item, td, approval) {
  if (!DECIDES[item.kind].includes(role)) {
    td.textContent = item.kind === "task_approval" ? "a data owner decides" : "an operator decides";
    td.className = "muted";
    return;
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  // a task whose spec is not the one on the ledger (or cannot be read) can only be rejected
  const approvable = approval !== undefined && approval.specStatus === "verified";
  const choices = item.kind === "task_approval"
    ? [...(approvable ? [["approve", "Approve", ""]] : []), ["reject", "Reject", "danger"]]
    : [["accept", "Accept", ""], ["decline", "Decline", "danger"]];
  for (const [decision, title, style] of choices) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = title;
    button.className = style;
    button.dataset.decision = decision;
    button.addEventListener("click", () => decide(item, decision, actions));
    actions.appendChild(button);
  }
  td.appendChild(actions);
}

async function decide(item, decision, actions) {
  $("action-error").hidden = true;
  for (const button of actions.querySelectorAll("button")) button.disabled = true;
  try {
    if (item.kind === "task_approval") {
      await call("POST", `/approvals/${item.taskId}/${item.dataset}`, { decision });
    } else {
      await call("POST", `/projects/${item.projectId}/invitation`, { decision });
    }
    const done = { approve: "approved", reject: "rejected", accept: "accepted", decline: "declined" };
    $("notice").textContent = `${label(item)}: ${done[decision]}, signed on the ledger.`;
    $("notice").hidden = false;
    await load();
  } catch (error) {
    fail("action-error", error);
    for (const button of actions.querySelectorAll("button")) button.disabled = false;
  }
}

function render(tableId, emptyId, items, orgName, approvals) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    row.dataset.kind = item.kind;
    row.dataset.id = item.kind === "task_approval" ? item.taskId : item.projectId;
    cell(row, label(item));
    cell(row, orgName(approvals ? item.fromOrg : item.toOrg));
    cell(row, details(item));
    cell(row, item.status).className = `status ${item.status}`;
    if (approvals) {
      const approval = approvals.get(requestKey(item));
      const td = row.insertCell();
      if (item.status === "pending") decisionButtons(item, td, approval);
      if (approval !== undefined) {
        const reviewRow = body.insertRow();
        reviewRow.className = "review";
        reviewRow.dataset.reviewFor = item.taskId;
        reviewRow.dataset.dataset = item.dataset;
        const reviewCell = reviewRow.insertCell();
        reviewCell.colSpan = 5;
        reviewCell.appendChild(review(approval, orgName));
      }
    }
  }
  $(emptyId).hidden = items.length > 0;
}

// the task as it concerns the owner's dataset, and each set of the owner's terms held against it
const USES = {
  join: "matched as a join key only, never released",
  aggregate: "its values enter aggregates only",
  retrieve: "its values are returned by keyword",
};
const TERMS = {
  protocols: "protocol",
  columns: "columns and what happens to each",
  outputs: "who learns the result",
  dealer: "dealer",
  min_fee_wei: "fee",
  min_result: "minimum result size",
  max_requester_set: "the requester's set size",
};
const GRANT_STATES = {
  usable: "usable", expired: "expired", used_up: "used up", revoked: "revoked",
  other_kind: "for another kind of task",
};
const SPEC_PROBLEMS = {
  unreachable: "The requester's node does not serve this task's specification",
  mismatch: "The requester's node serves a specification that is not the one on the ledger",
};

function requestKey(item) { return `${item.taskId}/${item.dataset}`; }

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function facts(pairs) {
  const list = element("dl");
  for (const [term, value] of pairs) {
    list.append(element("dt", term), element("dd", value));
  }
  return list;
}

function review(approval, orgName) {
  const box = element("div");
  if (approval.specStatus !== "verified") {
    box.append(
      element("p", `${SPEC_PROBLEMS[approval.specStatus]}: ${approval.specMessage}. `
        + "It cannot be approved.", "error spec-status"),
      facts([["protocol (on the ledger)", approval.protocol],
        ["fee (escrowed)", `${approval.feeWei} wei`]]),
    );
    return box;
  }
  const request = approval.request;
  box.append(element("h3", "What the task does with your dataset"), facts([
    ["protocol", request.protocol],
    ...request.columnUses.map((use) => [`column “${use.column}”`, USES[use.use]]),
    ["who learns the result", request.recipients.map(orgName).join(", ")],
    ["dealer", request.dealerOrg === null ? "none" : orgName(request.dealerOrg)],
    ["fee (escrowed)", `${approval.feeWei} wei`],
  ]));
  for (const terms of approval.reviews) {
    const section = element("section", undefined, "terms");
    section.dataset.source = terms.source;
    section.append(element("h3", terms.source === "grant"
      ? `Against your grant ${terms.grantId.slice(0, 10)}… to ${orgName(approval.requesterOrg)} `
        + `(${GRANT_STATES[terms.grantState]})`
      : "Against the default terms of a grant of this kind "
        + "(you gave this requester no grant on this dataset)"));
    if (terms.purpose) section.append(element("p", `purpose: ${terms.purpose}`, "muted"));
    section.append(element("p", terms.violation === null
      ? "The task keeps every term."
      : `The task breaks ${terms.violation}.`, terms.violation === null ? "kept" : "broken verdict"));
    if (terms.terms.length) {
      const table = element("table");
      const head = table.createTHead().insertRow();
      for (const title of ["term", "the task asks", "your terms allow", ""]) {
        head.appendChild(element("th", title));
      }
      const body = table.createTBody();
      for (const check of terms.terms) {
        const row = body.insertRow();
        row.dataset.term = check.term;
        row.className = check.kept ? "kept" : "broken";
        cell(row, TERMS[check.term] || check.term);
        cell(row, check.requested);
        cell(row, check.allowed);
        cell(row, check.kept ? "✓ kept" : "✗ broken");
      }
      section.append(table);
    }
    box.append(section);
  }
  return box;
}

async function approvalsOf(inbox) {
  // only a data owner reads the approval requests; one failure must not hide the others
  const asks = role === "data_owner"
    ? inbox.filter((item) => item.kind === "task_approval" && item.status === "pending") : [];
  const found = new Map();
  await Promise.all(asks.map(async (item) => {
    try {
      found.set(requestKey(item), await call("GET", `/approvals/${requestKey(item)}`));
    } catch (error) {
      fail("action-error", error);
    }
  }));
  return found;
}

async function load() {
  const [me, orgs, inbox, outbox] = await Promise.all([
    call("GET", "/me"),
    call("GET", "/orgs"),
    call("GET", "/workflow/inbox"),
    call("GET", "/workflow/outbox"),
  ]);
  const names = new Map(orgs.map((org) => [org.orgId, org.name]));
  const orgName = (id) => `${names.get(id) || "org"} (#${id})`;
  role = me.role;
  $("who").textContent = `· ${orgName(me.orgId)} · ${me.user} (${me.role})`;
  const pending = inbox.filter((item) => item.status === "pending").length;
  $("inbox-count").textContent = pending ? `${pending} pending` : "";
  render("inbox", "inbox-empty", inbox, orgName, await approvalsOf(inbox));
  render("outbox", "outbox-empty", outbox, orgName, null);
}

async function open() {
  try {
    await load();
    $("login").hidden = true;
    $("workspace").hidden = false;
  } catch (error) {
    sessionStorage.removeItem(KEY);
    fail("login-error", error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("login-error").hidden = true;
    sessionStorage.setItem(KEY, $("token").value.trim());
    open();
  });
  $("refresh").addEventListener("click", () => load().catch((error) => fail("action-error", error)));
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    window.location.reload();
  });
  if (sessionStorage.getItem(KEY)) open();
});
