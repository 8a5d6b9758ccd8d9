// pinnacle ui: keeps job tables current by polling the JSON API (no inline script: the page's
// Content-Security-Policy allows scripts from this server only). Text is set with textContent,
// never parsed as HTML.
"use strict";

(function () {
  function text(tag, value, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function componentLink(c) {
    var a = document.createElement("a");
    a.href = "/component?" + new URLSearchParams({ type: c.type_id, id: c.identifier, version: String(c.version) });
    a.textContent = c.type_id + " " + c.identifier + " v" + c.version;
    return a;
  }

  function row(j) {
    var tr = document.createElement("tr");
    tr.dataset.job = j.job_id;
    tr.className = "st-" + j.status;
    var td = document.createElement("td");
    var a = document.createElement("a");
    a.href = "/job?" + new URLSearchParams({ id: j.job_id });
    a.textContent = j.job_id;
    td.appendChild(a);
    tr.appendChild(td);
    tr.appendChild(text("td", j.kind));
    td = document.createElement("td");
    if (j.component) td.appendChild(componentLink(j.component)); else td.textContent = "–";
    tr.appendChild(td);
    tr.appendChild(text("td", j.status, "status"));
    td = document.createElement("td");
    var bar = document.createElement("progress");
    if (j.fraction !== null) {
      bar.max = 1000;
      bar.value = Math.round(j.fraction * 1000);
      td.appendChild(bar);
      td.appendChild(document.createTextNode(" "));
      td.appendChild(text("span", Math.round(j.fraction * 100) + "%", "pct"));
    } else {
      td.appendChild(bar);
    }
    tr.appendChild(td);
    tr.appendChild(text("td", j.rows_done + "/" + (j.rows_total === null ? "?" : j.rows_total), "rows"));
    tr.appendChild(text("td", j.tasks_done + "/" + j.tasks_total + (j.tasks_failed ? " (" + j.tasks_failed + " failed)" : ""), "tasks"));
    tr.appendChild(text("td", j.runner || "–"));
    tr.appendChild(text("td", j.created_at ? j.created_at.slice(0, 19).replace("T", " ") : "–"));
    tr.appendChild(text("td", j.seconds === null ? "–" : String(j.seconds), "seconds"));
    var err = j.error || "";
    tr.appendChild(text("td", err.length > 200 ? err.slice(0, 199) + "…" : err, "error"));
    return tr;
  }

  function poll(table) {
    var url = table.dataset.poll;
    var ms = parseInt(table.dataset.pollMs, 10) || 2000;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (page) {
          var items = page.items || [page];  // /api/jobs gives a page, /api/job one job
          var body = document.createElement("tbody");
          items.forEach(function (j) { body.appendChild(row(j)); });
          if (!items.length) {
            var tr = document.createElement("tr");
            tr.className = "none";
            var td = text("td", "no jobs");
            td.colSpan = 11;
            tr.appendChild(td);
            body.appendChild(tr);
          }
          table.replaceChild(body, table.tBodies[0]);
          table.dataset.polled = String((parseInt(table.dataset.polled || "0", 10) + 1));
        })
        .catch(function () { /* keep the last table; try again next tick */ })
        .then(function () { window.setTimeout(tick, ms); });
    }
    window.setTimeout(tick, ms);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.jobs[data-poll]").forEach(poll);
  });
})();
