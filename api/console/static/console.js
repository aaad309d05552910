// Tailor console: live refresh of running jobs and copy buttons. No framework, no build.
"use strict";

function announce(text) {
  const region = document.getElementById("announcer");
  if (region) { region.textContent = text; }
}

// A page with #live[data-live-url] re-renders that part every few seconds until the job ends.
function followLive() {
  const current = document.getElementById("live");
  if (!current || current.dataset.final === "true") { return; }
  const url = current.dataset.liveUrl;
  window.setTimeout(async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const next = doc.getElementById("live");
        const now = document.getElementById("live");
        if (next && now) {
          now.replaceWith(document.importNode(next, true));
          if (next.dataset.final === "true") { announce("The job has finished."); }
        }
      }
    } catch (err) {
      // A failed poll (server restarting, network blip) is retried on the next tick.
    }
    followLive();
  }, 2000);
}

// <button data-copy="ID"> copies the text of the element with that id.
function setUpCopy() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) { return; }
      try {
        await navigator.clipboard.writeText(source.textContent);
        announce("Copied to the clipboard.");
        button.dataset.copied = "true";
      } catch (err) {
        // No clipboard permission: select the text so Ctrl+C works.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        announce("Press Ctrl+C to copy the selected text.");
      }
    });
  });
}

// After a form error, move focus to the summary so keyboard and screen-reader users hear it.
function focusErrors() {
  const summary = document.getElementById("form-errors");
  if (summary) { summary.focus(); }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCopy();
  focusErrors();
  followLive();
});
