// One region: its controls, its clusters, and search by example (the most similar regions).
"use strict";

(function () {
  const root = document.getElementById("region");
  if (!root) return;
  const S = window.sonotype;
  const { el } = S;
  const id = root.dataset.regionId;
  const panel = document.getElementById("panel");
  const results = document.getElementById("similar-results");

  async function loadRegion() {
    const g = await S.api("/api/regions/" + id);
    const draw = (region) => {
      panel.replaceChildren(S.regionControls(region, (updated) => draw(Object.assign(region, updated))));
      if (g.clusters.length) {
        panel.append(el("p", {}, "Clusters: ", ...g.clusters.map((c, i) => el("span", {},
          i ? ", " : "", el("a", { href: "/clusters?c=" + c.clustering_id }, c.algorithm + " #" + c.cluster)))));
      }
    };
    draw(g);
  }

  async function loadSimilar() {
    try {
      const data = await S.api("/api/regions/" + id + "/similar?k=12");
      if (!data.hits.length) {
        results.replaceChildren(el("p", { class: "empty", text: "No other region to compare with." }));
      } else {
        results.replaceChildren(...data.hits.map((h) => S.thumbTile(h.region, "d=" + h.distance.toFixed(3))));
      }
    } catch (e) {
      results.replaceChildren(el("p", { class: "empty", text: "Search by example is unavailable: " + e.message }));
    }
    results.dataset.loaded = "true";
  }

  loadRegion().catch((e) => S.status(e.message, true));
  loadSimilar();
})();
