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
    if (event.type === "run_finished" && typeof event.status === "string") {
      showStatus(event.status);
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

  function showStatus(value) {
    const status = document.getElementById("status");
    status.textContent = value;
    status.className = "status " + value;
  }

  const terminal = new Set(["succeeded", "failed", "timed_out", "cancelled", "interrupted", "skipped", "missed"]);

  // The run's files are written before the store records its end, so the record may lag the last
  // event by a moment: asked until it is final (for up to a minute).
  async function finalStatus() {
    const live = document.getElementById("live");
    if (live) {
      live.textContent = "ended";
      live.classList.add("ended");
    }
    for (let tries = 0; tries < 120; tries++) {
      try {
        const answer = await fetch(table.dataset.run, { headers: { Accept: "application/json" } });
        const run = (await answer.json()).data.run;
        if (terminal.has(run.status)) {
          showStatus(run.status);
          set("finished", run.finished_at || "-");
          set("duration", run.duration_ms === null ? "-" : run.duration_ms + " ms");
          set("exit", run.exit_code !== null ? "exit " + run.exit_code : run.signal !== null ? "signal " + run.signal : "-");
          set("error", run.error ? run.error.code + ": " + run.error.message : "");
          return;
        }
      } catch (e) {
        // Tried again below; the status stays as the last event said.
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  const stream = new EventSource(table.dataset.stream);
  stream.addEventListener("event", (message) => append(message.data));
  stream.addEventListener("end", () => {
    stream.close();
    finalStatus();
  });
})();
