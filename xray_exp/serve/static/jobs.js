// Training jobs panel: once a token is entered, list GET /jobs every 2 s (status, epoch k of n, latest
// metrics) with a Cancel button for queued and running jobs (DELETE /jobs/{id}, bearer token).
// The token stays in this page's memory only.
"use strict";

(() => {
  const el = (id) => document.getElementById(id);
  const table = el("jobs"), tbody = table.querySelector("tbody"), statusLine = el("jobs-status");
  let token = "", timer = null;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  function progressText(job) {
    const p = job.progress;
    if (!p) return job.status === "queued" ? "waiting" : "–";
    return p.epochs ? `epoch ${p.epoch} of ${p.epochs}` : `epoch ${p.epoch}`;
  }

  function metricsText(job) {
    const m = (job.progress && job.progress.metrics) || {};
    const keys = Object.keys(m).filter((k) => /mAP50|box_loss/.test(k)).slice(0, 3);
    const parts = keys.map((k) => `${k} ${Number(m[k]).toFixed(3)}`);
    if (job.registered_version) parts.push(`registered v${job.registered_version}`);
    if (job.error && job.status !== "succeeded") parts.push(job.error);
    return parts.join(" · ");
  }

  async function cancel(job) {
    const response = await fetch(`/jobs/${encodeURIComponent(job.id)}`, {
      method: "DELETE", headers: { Authorization: `Bearer ${token}` },
    });
    if (response.ok) say(`Cancel sent for job ${job.id}`, false);
    else say(`Cannot cancel job ${job.id}: HTTP ${response.status} (check the token)`, true);
    refresh();
  }

  function render(jobs) {
    tbody.replaceChildren();
    for (const job of jobs) {
      const row = tbody.insertRow();
      row.dataset.jobId = job.id;
      row.insertCell().textContent = job.id;
      row.insertCell().textContent = `${job.mode} ${job.model} (${job.runner})`;
      const status = row.insertCell();
      status.textContent = job.status;
      status.className = `job-status ${job.status}`;
      row.insertCell().textContent = progressText(job);
      row.insertCell().textContent = metricsText(job);
      const action = row.insertCell();
      if (job.status === "queued" || job.status === "running") {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Cancel";
        button.className = "cancel";
        button.addEventListener("click", () => cancel(job));
        action.append(button);
      }
    }
    table.hidden = jobs.length === 0;
    if (!jobs.length) say("No training jobs yet.", false);
  }

  async function refresh() {
    try {
      const response = await fetch("/jobs");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
    } catch (err) {
      say(`Cannot list jobs: ${err}`, true);
    }
  }

  el("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = el("token").value.trim();
    if (!token) { say("Enter the service token to manage jobs.", true); return; }
    say("", false);
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, 2000);
  });
})();
