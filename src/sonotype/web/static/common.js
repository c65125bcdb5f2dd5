// sonotype pages: shared helpers (API calls, the edit token, the audio player, region controls).
"use strict";

const sonotype = (window.sonotype = {});

sonotype.editing = document.body.dataset.editing === "true";
const TOKEN_KEY = "sonotype-edit-token";
const AUTHOR_KEY = "sonotype-author";

sonotype.el = function (tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};

sonotype.fmt = function (s) {
  const m = Math.floor(s / 60);
  const r = s - 60 * m;
  return (m ? m + ":" + (r < 10 ? "0" : "") : "") + r.toFixed(m ? 2 : 3) + (m ? "" : " s");
};

sonotype.status = function (message, isError = false) {
  const box = document.getElementById("status");
  box.textContent = message;
  box.classList.toggle("error", isError);
  box.classList.add("shown");
  clearTimeout(sonotype._statusTimer);
  sonotype._statusTimer = setTimeout(() => box.classList.remove("shown"), isError ? 8000 : 3000);
};

async function apiError(r) {
  let detail = r.statusText;
  try {
    const body = await r.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (e) { /* not JSON */ }
  const err = new Error(detail || "HTTP " + r.status);
  err.status = r.status;
  return err;
}

sonotype.api = async function (url, options = {}) {
  const r = await fetch(url, options);
  if (!r.ok) throw await apiError(r);
  return r.status === 204 ? null : r.json();
};

// ---- the edit token: asked for once, kept in sessionStorage (this tab only)

sonotype.token = () => sessionStorage.getItem(TOKEN_KEY);
sonotype.author = () => sessionStorage.getItem(AUTHOR_KEY) || "";

sonotype.askToken = function () {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const author = document.getElementById("author-input");
  const error = document.getElementById("token-error");
  author.value = sonotype.author();
  input.value = "";
  error.textContent = "";
  return new Promise((resolve) => {
    const form = document.getElementById("token-form");
    const cancel = document.getElementById("token-cancel");
    const done = (ok) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", onCancel);
      dialog.close();
      resolve(ok);
    };
    const onCancel = () => done(false);
    const submit = async (ev) => {
      ev.preventDefault();
      try {
        await sonotype.api("/api/token", { method: "POST", headers: { "X-Sonotype-Token": input.value } });
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, input.value);
      sessionStorage.setItem(AUTHOR_KEY, author.value.trim());
      sonotype.showEditState();
      done(true);
    };
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", onCancel);
    dialog.showModal();
    input.focus();
  });
};

sonotype.showEditState = function () {
  const s = document.getElementById("edit-state");
  if (!sonotype.editing) s.textContent = "read-only";
  else if (sonotype.token()) s.textContent = "editing as " + (sonotype.author() || "anonymous");
  else s.textContent = "editing allowed (token needed)";
};

// method + url + JSON body, with the token; asks for the token first when there is none
sonotype.edit = async function (method, url, body) {
  if (!sonotype.editing) throw new Error("this server is read-only (start it with --edit-token to allow edits)");
  if (!sonotype.token() && !(await sonotype.askToken())) throw new Error("editing cancelled");
  const payload = Object.assign({}, body, { author: sonotype.author() || null });
  try {
    return await sonotype.api(url, {
      method,
      headers: { "Content-Type": "application/json", "X-Sonotype-Token": sonotype.token() },
      body: JSON.stringify(payload),
    });
  } catch (e) {
    if (e.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      sonotype.showEditState();
    }
    throw e;
  }
};

// ---- sound

sonotype.regionAudio = (id) => "/api/regions/" + id + "/audio.wav?pad=0.1";
sonotype.thumb = (id, w = 160, h = 96) => "/api/regions/" + id + "/spectrogram.png?width=" + w + "&height=" + h;

sonotype.play = function (url, onEnd) {
  const player = document.getElementById("player");
  player.onended = onEnd || null;
  player.onerror = () => sonotype.status("could not play " + url, true);
  player.src = url;
  const p = player.play();
  if (p && p.catch) p.catch((e) => { if (e.name !== "AbortError") sonotype.status("playback: " + e.message, true); });
};

sonotype.stop = function () {
  const player = document.getElementById("player");
  player.onended = null;
  player.pause();
};

// play region ids one after another; onEach(id) before each, onDone() at the end
sonotype.playAll = function (ids, onEach, onDone) {
  let i = 0;
  const next = () => {
    if (i >= ids.length) { if (onDone) onDone(); return; }
    const id = ids[i++];
    if (onEach) onEach(id);
    sonotype.play(sonotype.regionAudio(id), next);
  };
  next();
};

// ---- one region's controls: play, label, note, links

sonotype.regionControls = function (region, onChange) {
  const el = sonotype.el;
  const box = el("div", { class: "region-controls", dataset: { regionId: region.id } });
  const label = region.label || "not reviewed";
  box.append(
    el("h3", { text: "Region " + region.id }),
    el("p", { class: "meta", text: sonotype.fmt(region.start_s) + " – " + sonotype.fmt(region.stop_s) + " (" +
      (region.stop_s - region.start_s).toFixed(3) + " s) · peak " + region.peak_score.toFixed(3) + " · mean " +
      region.mean_score.toFixed(3) }),
    el("p", {}, "Label: ", el("strong", { class: "label-value", text: label }),
      region.labelled_by ? el("small", { text: " by " + region.labelled_by }) : null),
  );
  const setLabel = async (value) => {
    try {
      const updated = await sonotype.edit("PUT", "/api/regions/" + region.id + "/label", { label: value });
      sonotype.status("region " + region.id + ": " + (value || "label withdrawn"));
      onChange(updated);
    } catch (e) { sonotype.status(e.message, true); }
  };
  const buttons = el("div", { class: "buttons" },
    el("button", { type: "button", class: "play", onclick: () => sonotype.play(sonotype.regionAudio(region.id)) }, "▶ Play"));
  if (sonotype.editing) {
    buttons.append(
      el("button", { type: "button", class: "set-vocalisation", onclick: () => setLabel("vocalisation") }, "Vocalisation"),
      el("button", { type: "button", class: "set-noise", onclick: () => setLabel("noise") }, "Noise"),
      el("button", { type: "button", class: "set-none", onclick: () => setLabel(null) }, "Clear label"));
  }
  box.append(buttons);
  const note = el("textarea", { class: "note", rows: 2, maxlength: 4000, placeholder: "note", readonly: !sonotype.editing });
  note.value = region.note || "";
  box.append(note);
  if (sonotype.editing) {
    box.append(el("button", { type: "button", class: "save-note", onclick: async () => {
      try {
        const updated = await sonotype.edit("PUT", "/api/regions/" + region.id + "/note", { note: note.value || null });
        sonotype.status("note saved");
        onChange(updated);
      } catch (e) { sonotype.status(e.message, true); }
    } }, "Save note"));
  }
  box.append(el("p", { class: "links" },
    el("a", { href: "/regions/" + region.id + "#similar", class: "similar-link" }, "Similar regions"), " · ",
    el("a", { href: "/recordings/" + region.recording_id + "?run_id=" + region.run_id }, "In its recording")));
  return box;
};

// a small thumbnail tile that plays its region when clicked
sonotype.thumbTile = function (region, caption) {
  const el = sonotype.el;
  const fig = el("figure", { class: "thumb " + (region.label || "unlabelled"), dataset: { regionId: region.id } });
  const img = el("img", { src: sonotype.thumb(region.id), alt: "region " + region.id, loading: "lazy",
    width: 160, height: 96, title: "click to listen" });
  img.addEventListener("click", () => {
    document.querySelectorAll(".thumb.playing").forEach((t) => t.classList.remove("playing"));
    fig.classList.add("playing");
    sonotype.play(sonotype.regionAudio(region.id), () => fig.classList.remove("playing"));
  });
  fig.append(img, el("figcaption", {}, el("a", { href: "/regions/" + region.id }, "#" + region.id), " ", caption || ""));
  return fig;
};

document.addEventListener("DOMContentLoaded", sonotype.showEditState);
