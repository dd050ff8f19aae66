// The run page's live part: the events written after the page was drawn, as they are written, and
// the run's final status once it ends, without a reload. Everything a job wrote is set as text,
// never as markup.
"use strict";
(function () {
  const table = document.getElementById("events");
  if (!table || table.dataset.live !== "true" || !window.EventSource) {
    return;
  }
  const body = table.tBodies[0];
  const skipped = new Set(["seq", "ts", "job_id", "run", "type"]);

  function describe(event) {
    if (event.type === "output") {
      return [event.stream || "output", event.line || ""];
    }
    const facts = [];
    for (const [key, value] of Object.entries(event)) {
      if (skipped.has(key) || value === null) continue;
      facts.push(key + "=" + (typeof value === "string" ? value : JSON.stringify(value)));
    }
    return [event.type || "event", facts.join(" ")];
  }

  function append(line) {
    let event;
    try {
      event = JSON.parse(line);
    } catch (e) {
      event = { type: "unreadable", line: line };
    }
    const [kind, text] = describe(event);
    const row = body.insertRow();
    row.className = kind;
    for (const value of [event.ts || "", kind, text]) {
      const cell = row.insertCell();
      cell.textContent = value;
    }
    cellClasses(row);
  }

  function cellClasses(row) {
    row.cells[0].className = "at";
    row.cells[1].className = "kind";
    row.cells[2].className = "text";
  }

  function set(id, value) {
    const element = document.getElementById(id);
    if (element && value !== undefined) element.textContent = value;
  }

  async function finalStatus() {
    const live = document.getElementById("live");
    if (live) {
      live.textContent = "ended";
      live.classList.add("ended");
    }
    try {
      const answer = await fetch(table.dataset.run, { headers: { Accept: "application/json" } });
      const run = (await answer.json()).data.run;
      const status = document.getElementById("status");
      status.textContent = run.status;
      status.className = "status " + run.status;
      set("finished", run.finished_at || "-");
      set("duration", run.duration_ms === null ? "-" : run.duration_ms + " ms");
      set("exit", run.exit_code !== null ? "exit " + run.exit_code : run.signal !== null ? "signal " + run.signal : "-");
      set("error", run.error ? run.error.code + ": " + run.error.message : "");
    } catch (e) {
      // The status stays as drawn; a reload shows the end.
    }
  }

  const stream = new EventSource(table.dataset.stream);
  stream.addEventListener("event", (message) => append(message.data));
  stream.addEventListener("end", () => {
    stream.close();
    finalStatus();
  });
})();
