// Sound types: one gallery per cluster (play all, rename, note, merge, split) and the embedding map.
"use strict";

(function () {
  const root = document.getElementById("clustering");
  if (!root) return;
  const S = window.sonotype;
  const { el, fmt } = S;
  const cid = root.dataset.clusteringId;
  const runId = root.dataset.runId;
  let method = root.dataset.method;
  const galleries = document.getElementById("galleries");
  const SVG = "http://www.w3.org/2000/svg";
  let clusters = [];

  function colour(cluster) {
    if (cluster === null || cluster === undefined || cluster < 0) return "#8a8a8a";
    const hue = (cluster * 137.508) % 360; // golden-angle steps keep neighbours apart
    return "hsl(" + hue.toFixed(0) + ", 70%, 45%)";
  }

  function clusterTitle(c) { return c.name ? c.name + " (cluster " + c.cluster + ")" : "cluster " + c.cluster; }

  async function change(fn, okMessage) {
    try {
      await fn();
      S.status(okMessage);
      await loadClusters();
      await loadMap();
    } catch (e) { S.status(e.message, true); }
  }

  function gallery(c) {
    const sec = el("section", { class: "cluster", dataset: { cluster: c.cluster } });
    const swatch = el("i", { class: "sw" });
    swatch.style.background = colour(c.cluster);
    const tiles = el("div", { class: "gallery" });
    const ids = c.members.map((m) => m.id);
    const playAll = el("button", { type: "button", class: "play-all", onclick: () => {
      S.playAll(ids, (id) => {
        tiles.querySelectorAll(".thumb").forEach((t) => t.classList.toggle("playing", Number(t.dataset.regionId) === id));
      }, () => tiles.querySelectorAll(".thumb").forEach((t) => t.classList.remove("playing")));
    } }, "▶ Play all");
    const head = el("header", {}, swatch, el("h3", { text: clusterTitle(c) }),
      el("span", { class: "count", text: c.size + " region" + (c.size === 1 ? "" : "s") +
        (c.size > c.members.length ? " (first " + c.members.length + " shown)" : "") }), playAll);
    sec.append(head);
    if (c.note) sec.append(el("p", { class: "note-text", text: c.note }));
    for (const m of c.members) {
      const tile = S.thumbTile(m, fmt(m.stop_s - m.start_s));
      if (S.editing) tile.prepend(el("input", { type: "checkbox", class: "pick", title: "select for split", value: m.id }));
      tiles.append(tile);
    }
    sec.append(tiles);
    if (S.editing) sec.append(editControls(c, tiles));
    return sec;
  }

  function editControls(c, tiles) {
    const base = "/api/clusterings/" + cid + "/clusters/" + c.cluster;
    const name = el("input", { type: "text", class: "name-input", maxlength: 200, placeholder: "name this sound type" });
    name.value = c.name || "";
    const note = el("input", { type: "text", class: "note-input", maxlength: 4000, placeholder: "note" });
    note.value = c.note || "";
    const into = el("select", { class: "merge-into" }, el("option", { value: "", text: "merge into…" }),
      ...clusters.filter((o) => o.cluster !== c.cluster).map((o) => el("option", { value: o.cluster, text: clusterTitle(o) })));
    return el("div", { class: "edit-row" },
      name, el("button", { type: "button", class: "save-name", onclick: () => change(
        () => S.edit("PUT", base + "/name", { name: name.value.trim() || null }), "cluster " + c.cluster + " renamed") }, "Rename"),
      note, el("button", { type: "button", class: "save-cluster-note", onclick: () => change(
        () => S.edit("PUT", base + "/note", { note: note.value.trim() || null }), "note saved") }, "Save note"),
      into, el("button", { type: "button", class: "merge", onclick: () => {
        if (!into.value) { S.status("choose the cluster to merge into", true); return; }
        change(() => S.edit("POST", "/api/clusterings/" + cid + "/merge", { into: Number(into.value), other: c.cluster }),
          "cluster " + c.cluster + " merged into " + into.value);
      } }, "Merge"),
      el("button", { type: "button", class: "split", onclick: () => {
        const picked = [...tiles.querySelectorAll("input.pick:checked")].map((b) => Number(b.value));
        if (!picked.length) { S.status("tick the regions to move to a new cluster first", true); return; }
        change(() => S.edit("POST", base + "/split", { region_ids: picked }), picked.length + " region(s) split off");
      } }, "Split off ticked"));
  }

  async function loadClusters() {
    const data = await S.api("/api/clusterings/" + cid + "?limit=60");
    clusters = data.clusters;
    galleries.replaceChildren(...clusters.map(gallery));
    root.dataset.loaded = "true";
  }

  async function loadMap() {
    const box = document.getElementById("map");
    const tip = document.getElementById("map-tip");
    let data;
    try {
      data = await S.api("/api/runs/" + runId + "/map?method=" + method + "&clustering=" + cid);
      if (!data.points.length) {
        const other = method === "tsne" ? "umap" : "tsne";
        const alt = await S.api("/api/runs/" + runId + "/map?method=" + other + "&clustering=" + cid);
        if (alt.points.length) { data = alt; method = other; }
      }
    } catch (e) { S.status("map: " + e.message, true); return; }
    if (!data.points.length) {
      box.replaceChildren(el("p", { class: "empty", text: "No map points stored for this run yet." }));
      return;
    }
    const W = 640, H = 440, M = 14;
    const xs = data.points.map((p) => p.x), ys = data.points.map((p) => p.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const sx = (x) => M + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * M);
    const sy = (y) => H - M - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * M);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("class", "scatter");
    svg.setAttribute("aria-label", method + " map of " + data.points.length + " regions");
    for (const p of data.points) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", sx(p.x).toFixed(1));
      dot.setAttribute("cy", sy(p.y).toFixed(1));
      dot.setAttribute("r", 5);
      dot.setAttribute("fill", colour(p.cluster));
      dot.setAttribute("class", "point");
      dot.dataset.regionId = p.region_id;
      dot.addEventListener("mouseenter", (ev) => {
        tip.replaceChildren(el("img", { src: S.thumb(p.region_id), width: 160, height: 96, alt: "" }),
          el("div", { text: "region " + p.region_id + (p.cluster !== null ? " · cluster " + p.cluster : "") +
            " · " + fmt(p.stop_s - p.start_s) }));
        const r = box.getBoundingClientRect();
        tip.style.left = ev.clientX - r.left + 12 + "px";
        tip.style.top = ev.clientY - r.top + 12 + "px";
        tip.hidden = false;
      });
      dot.addEventListener("mouseleave", () => { tip.hidden = true; });
      dot.addEventListener("click", () => {
        svg.querySelectorAll(".point.playing").forEach((d) => d.classList.remove("playing"));
        dot.classList.add("playing");
        S.play(S.regionAudio(p.region_id), () => dot.classList.remove("playing"));
      });
      svg.append(dot);
    }
    box.replaceChildren(svg, el("p", { class: "hint", text: data.points.length + " regions, " +
      (method === "tsne" ? "t-SNE" : "UMAP") + "; colour = cluster" }));
    box.dataset.loaded = "true";
  }

  loadClusters().catch((e) => S.status(e.message, true));
  loadMap();
})();
