// The Moldau console's only script: live views over server-sent events, the live tail,
// and confirmations. Every page works without it; it only keeps data fresh.
"use strict";

// <section data-live="/url">: the server sends the section's new HTML every few seconds.
function startLiveViews() {
  for (const section of document.querySelectorAll("[data-live]")) {
    const badge = section.parentElement.querySelector(".live-badge") || document.querySelector(".live-badge");
    const source = new EventSource(section.dataset.live);
    source.onmessage = (event) => {
      section.innerHTML = event.data;
      section.dataset.updates = String(Number(section.dataset.updates || 0) + 1);
      if (badge) { badge.classList.remove("stale"); badge.textContent = "live"; }
    };
    source.onerror = () => {
      if (badge) { badge.classList.add("stale"); badge.textContent = "reconnecting"; }
    };
    window.addEventListener("pagehide", () => source.close());
  }
}

// <button data-tail="/url" data-target="selector">: new records are added at the bottom
// (the list is in time order), the oldest dropped past MAX_TAIL_ROWS.
const MAX_TAIL_ROWS = 500;
function startTail() {
  for (const button of document.querySelectorAll("[data-tail]")) {
    const status = document.getElementById("tail-status");
    let source = null;
    button.addEventListener("click", () => {
      if (source) {
        source.close();
        source = null;
        button.setAttribute("aria-pressed", "false");
        button.textContent = "Live tail";
        if (status) status.textContent = "";
        return;
      }
      const body = document.querySelector(button.dataset.target);
      source = new EventSource(button.dataset.tail);
      button.setAttribute("aria-pressed", "true");
      button.textContent = "Stop tail";
      if (status) status.textContent = "waiting for new messages…";
      source.addEventListener("records", (event) => {
        const holder = document.createElement("tbody");
        holder.innerHTML = event.data;
        for (const row of Array.from(holder.children)) {
          row.classList.add("fresh");
          body.append(row);
        }
        while (body.children.length > MAX_TAIL_ROWS) body.firstElementChild.remove();
        if (status) status.textContent = "tailing";
      });
      source.addEventListener("problem", (event) => { if (status) status.innerHTML = event.data; });
      source.onerror = () => { if (status) status.textContent = "reconnecting…"; };
    });
  }
}

// <form data-confirm="question">: ask before destructive actions.
function startConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

startLiveViews();
startTail();
startConfirmations();
