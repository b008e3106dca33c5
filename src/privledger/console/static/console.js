// Workflow console: plain fetch() calls to this node's REST API with the pasted token. Every value
// from the API is written with textContent, never as HTML.
"use strict";

const API = "/api/v1";
const KEY = "privledger-token";

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

function decisionButtons(item, td) {
  if (!DECIDES[item.kind].includes(role)) {
    td.textContent = item.kind === "task_approval" ? "a data owner decides" : "an operator decides";
    td.className = "muted";
    return;
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  const choices = item.kind === "task_approval"
    ? [["approve", "Approve", ""], ["reject", "Reject", "danger"]]
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

function render(tableId, emptyId, items, orgName, withDecision) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    row.dataset.kind = item.kind;
    row.dataset.id = item.kind === "task_approval" ? item.taskId : item.projectId;
    cell(row, label(item));
    cell(row, orgName(withDecision ? item.fromOrg : item.toOrg));
    cell(row, details(item));
    cell(row, item.status).className = `status ${item.status}`;
    if (withDecision) {
      const td = row.insertCell();
      if (item.status === "pending") decisionButtons(item, td);
    }
  }
  $(emptyId).hidden = items.length > 0;
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
  render("inbox", "inbox-empty", inbox, orgName, true);
  render("outbox", "outbox-empty", outbox, orgName, false);
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
