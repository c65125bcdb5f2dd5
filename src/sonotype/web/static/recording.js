// Recording view: a horizontally scrolling spectrogram made of tiles, regions drawn over it.
"use strict";

(function () {
  const root = document.getElementById("recording");
  if (!root) return;
  const { el, fmt } = window.sonotype;
  const S = window.sonotype;
  const id = root.dataset.recordingId;
  const duration = parseFloat(root.dataset.duration);
  let runId = root.dataset.runId;
  const scroller = document.getElementById("scroller");
  const track = document.getElementById("track");
  const panel = document.getElementById("panel");
  const tbody = document.querySelector("#region-table tbody");
  const HEIGHT = 256;
  const MAX_TILE_PX = 4000; // the server's widest picture
  let pps = 50; // pixels per second
  let regions = [];
  let selected = null;

  function tileSeconds() { return Math.max(1, Math.min(30, Math.floor(MAX_TILE_PX / pps))); }

  function layout() {
    track.replaceChildren();
    const width = Math.max(1, Math.round(duration * pps));
    track.style.width = width + "px";
    track.style.height = HEIGHT + 22 + "px";
    const ts = tileSeconds();
    for (let start = 0; start < duration; start += ts) {
      const stop = Math.min(duration, start + ts);
      const w = Math.max(1, Math.round((stop - start) * pps));
      const img = el("img", { class: "tile", alt: "", width: w, height: HEIGHT, dataset: {
        src: "/api/recordings/" + id + "/spectrogram.png?start=" + start.toFixed(3) + "&stop=" + stop.toFixed(3) +
          "&width=" + w + "&height=" + HEIGHT + (runId ? "&run_id=" + runId : "") } });
      img.style.left = Math.round(start * pps) + "px";
      track.append(img);
    }
    const axis = el("div", { class: "axis" });
    const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => s * pps >= 80) || 600;
    for (let t = 0; t <= duration; t += step) {
      const label = t < 60 ? +t.toFixed(1) + " s" : Math.floor(t / 60) + ":" + String(Math.round(t % 60)).padStart(2, "0");
      const tick = el("span", { class: "tick", text: label });
      tick.style.left = Math.round(t * pps) + "px";
      axis.append(tick);
    }
    track.append(axis);
    drawRegions();
    loadVisibleTiles();
  }

  function loadVisibleTiles() {
    const left = scroller.scrollLeft - scroller.clientWidth;
    const right = scroller.scrollLeft + 2 * scroller.clientWidth;
    for (const img of track.querySelectorAll("img.tile:not([src])")) {
      const x = parseFloat(img.style.left);
      if (x + img.width >= left && x <= right) img.src = img.dataset.src;
    }
  }

  function drawRegions() {
    track.querySelectorAll(".region").forEach((r) => r.remove());
    for (const g of regions) {
      const box = el("div", { class: "region " + (g.label || "unlabelled") + (selected === g.id ? " selected" : ""),
        role: "button", tabindex: 0, title: "region " + g.id + ": " + fmt(g.start_s) + " – " + fmt(g.stop_s) +
          " · peak " + g.peak_score.toFixed(2) + (g.label ? " · " + g.label : ""),
        dataset: { regionId: g.id } });
      box.style.left = g.start_s * pps + "px";
      box.style.width = Math.max(2, (g.stop_s - g.start_s) * pps) + "px";
      box.style.height = HEIGHT + "px";
      box.addEventListener("click", () => { select(g.id); S.play(S.regionAudio(g.id)); });
      box.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); box.click(); } });
      track.append(box);
    }
  }

  function drawTable() {
    tbody.replaceChildren();
    for (const g of regions) {
      const tr = el("tr", { class: selected === g.id ? "selected" : "", dataset: { regionId: g.id } },
        el("td", { text: g.id }), el("td", { class: "num", text: fmt(g.start_s) }),
        el("td", { class: "num", text: fmt(g.stop_s) }),
        el("td", { class: "num", text: (g.stop_s - g.start_s).toFixed(2) + " s" }),
        el("td", { class: "num", text: g.peak_score.toFixed(3) }), el("td", { class: "num", text: g.mean_score.toFixed(3) }),
        el("td", { class: "label-cell " + (g.label || "unlabelled"), text: g.label || "–" }),
        el("td", { text: g.note || "" }));
      tr.addEventListener("click", () => { select(g.id); scrollTo(g); });
      tbody.append(tr);
    }
    document.getElementById("region-count").textContent = "(" + regions.length + (runId ? ", run " + runId : "") + ")";
  }

  function scrollTo(g) {
    const x = g.start_s * pps;
    if (x < scroller.scrollLeft || x > scroller.scrollLeft + scroller.clientWidth - 40) {
      scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 3);
    }
  }

  function select(regionId) {
    selected = regionId;
    const g = regions.find((r) => r.id === regionId);
    track.querySelectorAll(".region").forEach((b) => b.classList.toggle("selected", Number(b.dataset.regionId) === regionId));
    tbody.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.regionId) === regionId));
    panel.hidden = false;
    panel.replaceChildren(S.regionControls(g, (updated) => {
      Object.assign(g, updated);
      drawRegions();
      drawTable();
      select(g.id);
    }));
  }

  // kHz labels pinned to the left edge of the scrolling view (low frequencies at the bottom)
  function frequencyAxis(fmin, fmax) {
    const axis = el("div", { class: "freq-axis", "aria-hidden": "true" });
    for (let i = 0; i <= 4; i++) {
      const f = fmin + ((fmax - fmin) * i) / 4;
      const label = el("span", { text: (f / 1000).toFixed(1) + " kHz" });
      label.style.top = Math.round(HEIGHT * (1 - i / 4)) + "px";
      axis.append(label);
    }
    scroller.parentElement.insertBefore(el("div", { class: "spectro-wrap" }), scroller).append(axis, scroller);
  }

  async function load() {
    try {
      const data = await S.api("/api/recordings/" + id + "/regions" + (runId ? "?run_id=" + runId : ""));
      regions = data.regions;
      runId = data.run_id === null ? "" : String(data.run_id);
      if (data.band_hz) {
        document.getElementById("band").textContent = "band " + (data.band_hz[0] / 1000).toFixed(1) + "–" +
          (data.band_hz[1] / 1000).toFixed(1) + " kHz";
        frequencyAxis(data.band_hz[0], data.band_hz[1]);
      }
    } catch (e) {
      S.status("regions: " + e.message, true);
    }
    layout();
    drawTable();
    root.dataset.loaded = "true";
  }

  // a short recording fills the width (up to 200 px/s); a long one starts at 50 px/s
  pps = Math.min(200, Math.max(50, (scroller.clientWidth - 2) / Math.max(duration, 0.001)));
  scroller.addEventListener("scroll", loadVisibleTiles, { passive: true });
  window.addEventListener("resize", loadVisibleTiles);
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
    const centre = (scroller.scrollLeft + scroller.clientWidth / 2) / pps;
    pps = parseFloat(b.dataset.zoom);
    layout();
    scroller.scrollLeft = Math.max(0, centre * pps - scroller.clientWidth / 2);
    loadVisibleTiles();
  }));
  document.getElementById("play-view").addEventListener("click", () => {
    const start = Math.max(0, scroller.scrollLeft / pps);
    const stop = Math.min(duration, (scroller.scrollLeft + scroller.clientWidth) / pps);
    S.play("/api/recordings/" + id + "/audio.wav?start=" + start.toFixed(3) + "&stop=" + stop.toFixed(3));
  });
  const runSelect = document.getElementById("run-select");
  if (runSelect) runSelect.addEventListener("change", () => { location.search = "?run_id=" + runSelect.value; });
  load();
})();
