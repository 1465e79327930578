// Spool's window: the recorder (source, Record/Stop, elapsed time, the upload
// keeping pace, the link), the history, and the settings. Everything it does
// goes through the generated, typed bindings (bindings.ts); errors arrive as
// {code, message} and are shown, never swallowed.

import { Channel } from "@tauri-apps/api/core";
import {
  commands,
  events,
  type Deleted,
  type HistoryItem,
  type Notice,
  type IpcError,
  type RecordingView,
  type Settings,
  type SettingsView,
} from "./bindings";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  source: $<HTMLSelectElement>("source-select"),
  refreshSources: $<HTMLButtonElement>("refresh-sources"),
  record: $<HTMLButtonElement>("record-button"),
  stop: $<HTMLButtonElement>("stop-button"),
  elapsed: $("elapsed-time"),
  status: $("upload-status"),
  progress: $("upload-progress"),
  barRecorded: document.querySelector<HTMLElement>("#upload-progress .recorded")!,
  barConfirmed: document.querySelector<HTMLElement>("#upload-progress .confirmed")!,
  detail: $("progress-detail"),
  linkBox: $("link-box"),
  link: $<HTMLAnchorElement>("share-link"),
  copy: $<HTMLButtonElement>("copy-link-button"),
  liveBox: $("live-box"),
  liveLink: $<HTMLAnchorElement>("live-link"),
  liveCopy: $<HTMLButtonElement>("copy-live-button"),
  error: $("error-message"),
  historyList: $<HTMLUListElement>("history-list"),
  historyEmpty: $("history-empty"),
  historyMessage: $("history-message"),
  notices: $("notices"),
  settingsButton: $<HTMLButtonElement>("settings-button"),
  settings: $<HTMLDialogElement>("settings"),
  destination: $<HTMLSelectElement>("settings-destination"),
  serverUrl: $<HTMLInputElement>("settings-server-url"),
  tokenId: $<HTMLInputElement>("settings-token-id"),
  tokenSecret: $<HTMLInputElement>("settings-token-secret"),
  secretNote: $("settings-secret-note"),
  endpointUrl: $<HTMLInputElement>("settings-endpoint-url"),
  embeddedNote: $("settings-embedded"),
  shareLan: $<HTMLInputElement>("settings-share-lan"),
  lanAddress: $("settings-lan-address"),
  envNote: $("settings-env"),
  fps: $<HTMLSelectElement>("settings-fps"),
  fragmentSecs: $<HTMLInputElement>("settings-fragment-secs"),
  crf: $<HTMLSelectElement>("settings-crf"),
  maxHeight: $<HTMLSelectElement>("settings-max-height"),
  paths: $("settings-paths"),
  settingsMessage: $("settings-message"),
  settingsSave: $<HTMLButtonElement>("settings-save"),
  settingsCancel: $<HTMLButtonElement>("settings-cancel"),
};

// ---------- formatting ----------

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function showError(el: HTMLElement, e: IpcError | string | null) {
  if (!e) {
    el.hidden = true;
    el.textContent = "";
    delete el.dataset.code;
    return;
  }
  const err = typeof e === "string" ? { code: "ERR_INTERNAL", message: e } : e;
  el.hidden = false;
  el.textContent = err.message;
  el.dataset.code = err.code;
}

/**
 * Unwraps a typed result; an error is shown in `where` and becomes
 * `undefined` (a command that returns nothing succeeds with `null`).
 */
async function call<T>(
  p: Promise<{ status: "ok"; data: T } | { status: "error"; error: IpcError }>,
  where: HTMLElement = ui.error,
): Promise<T | undefined> {
  try {
    const r = await p;
    if (r.status === "error") {
      showError(where, r.error);
      return undefined;
    }
    return r.data;
  } catch (e) {
    showError(where, String(e));
    return undefined;
  }
}

// ---------- recorder ----------

/** Writes only what changed: every write costs WebKit a layout and a paint. */
function setText(el: HTMLElement, text: string) {
  if (el.textContent !== text) el.textContent = text;
}
function setAttr(el: HTMLElement, name: string, value: string) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}
function setStyleWidth(el: HTMLElement, width: string) {
  if (el.style.width !== width) el.style.width = width;
}

function render(v: RecordingView) {
  if (ui.record.disabled !== v.capturing) ui.record.disabled = v.capturing;
  if (ui.stop.disabled !== !v.capturing) ui.stop.disabled = !v.capturing;
  if (ui.source.disabled !== v.capturing) ui.source.disabled = v.capturing;
  setText(ui.elapsed, clock(v.elapsed_ms));

  const word = v.state === "idle" ? "ready" : v.state;
  let text = word;
  if (v.state === "reconnecting") {
    const retry = v.next_retry_in_ms != null ? `, next try in ${Math.ceil(v.next_retry_in_ms / 1000)} s` : "";
    text = `reconnecting… (attempt ${v.attempt}${retry})`;
  } else if (v.state === "stalled") {
    text = "stalled — still retrying, nothing is lost";
  } else if (v.state === "uploading") {
    text = "uploading the last fragment…";
  } else if (v.state === "complete") {
    text = "complete";
  } else if (v.state === "failed") {
    text = "failed";
  } else if (v.state === "saved") {
    text = "saved locally";
  }
  setText(ui.status, text);
  setAttr(ui.status, "class", `status ${v.state}`);
  if (v.last_error && (v.state === "reconnecting" || v.state === "stalled")) {
    ui.status.title = v.last_error;
  } else {
    ui.status.removeAttribute("title");
  }

  setAttr(ui.progress, "data-confirmed", String(v.confirmed));
  setAttr(ui.progress, "data-recorded", String(v.recorded));
  setAttr(ui.progress, "aria-valuemin", "0");
  setAttr(ui.progress, "aria-valuemax", String(v.recorded));
  setAttr(ui.progress, "aria-valuenow", String(v.confirmed));
  setStyleWidth(ui.barRecorded, v.recorded > 0 ? "100%" : "0px");
  setStyleWidth(
    ui.barConfirmed,
    v.recorded > 0 ? `${Math.min(100, (100 * v.confirmed) / v.recorded).toFixed(1)}%` : "0px",
  );
  const retrying = v.state === "reconnecting" || v.state === "stalled";
  if (ui.progress.classList.contains("retrying") !== retrying) ui.progress.classList.toggle("retrying", retrying);

  if (v.state === "idle") {
    setText(ui.detail, "");
  } else {
    const dropped = v.dropped > 0 ? ` · ${v.dropped} frames dropped` : "";
    setText(
      ui.detail,
      `fragments ${v.fragments_confirmed}/${v.fragments_recorded} uploaded · ` +
        `${bytes(v.confirmed)} of ${bytes(v.recorded)} · backlog ${bytes(v.backlog)}${dropped}`,
    );
  }

  if (v.share_url) {
    if (ui.linkBox.hidden) ui.linkBox.hidden = false;
    setAttr(ui.link, "href", v.share_url);
    setText(ui.link, v.share_url);
  } else if (!ui.linkBox.hidden || ui.link.hasAttribute("href")) {
    ui.linkBox.hidden = true;
    ui.link.removeAttribute("href");
    setText(ui.link, "");
  }
  // The link exists from Start and plays live; once the upload is complete
  // the share link above takes over.
  const live = v.live_url && !v.share_url ? v.live_url : null;
  if (live) {
    if (ui.liveBox.hidden) ui.liveBox.hidden = false;
    setAttr(ui.liveLink, "href", live);
    setText(ui.liveLink, live);
  } else if (!ui.liveBox.hidden) {
    ui.liveBox.hidden = true;
    ui.liveLink.removeAttribute("href");
    setText(ui.liveLink, "");
  }
  if (v.error || !ui.error.hidden) showError(ui.error, v.error ?? null);
}

async function loadSources() {
  const sources = await call(commands.listSources());
  if (!sources) return;
  const settings = await call(commands.getSettings());
  const previous = ui.source.value || settings?.settings.source || "";
  ui.source.replaceChildren(
    ...sources.map((s) => {
      const o = document.createElement("option");
      o.value = s.id;
      o.textContent = `${s.kind === "window" ? "Window: " : ""}${s.name} (${s.width}×${s.height})`;
      return o;
    }),
  );
  if (sources.some((s) => s.id === previous)) ui.source.value = previous;
  if (sources.length === 0) {
    showError(ui.error, { code: "ERR_SOURCE", message: "No display or window to record was found." });
  }
}

ui.record.addEventListener("click", async () => {
  showError(ui.error, null);
  ui.record.disabled = true;
  const started = await call(commands.startRecording(ui.source.value));
  if (!started) ui.record.disabled = false;
  void refreshHistory();
});

ui.stop.addEventListener("click", async () => {
  ui.stop.disabled = true;
  await call(commands.stopRecording());
});

ui.refreshSources.addEventListener("click", () => void loadSources());

ui.copy.addEventListener("click", async () => {
  const url = ui.link.href;
  if (!url) return;
  if ((await call(commands.copyText(url))) !== undefined) {
    ui.copy.textContent = "Copied";
    setTimeout(() => (ui.copy.textContent = "Copy"), 1500);
  }
});

ui.link.addEventListener("click", (e) => {
  e.preventDefault();
  if (ui.link.href) void call(commands.openLink(ui.link.href));
});

ui.liveCopy.addEventListener("click", async () => {
  const url = ui.liveLink.href;
  if (!url) return;
  if ((await call(commands.copyText(url))) !== undefined) {
    ui.liveCopy.textContent = "Copied";
    setTimeout(() => (ui.liveCopy.textContent = "Copy"), 1500);
  }
});

ui.liveLink.addEventListener("click", (e) => {
  e.preventDefault();
  if (ui.liveLink.href) void call(commands.openLink(ui.liveLink.href));
});

// ---------- notices ----------

/** Shows what this launch must tell the user (each notice comes once). */
function showNotices(notices: Notice[]) {
  for (const n of notices) {
    const box = document.createElement("div");
    box.className = "notice";
    box.dataset.testid = "notice-message";
    box.dataset.kind = n.kind;
    const text = document.createElement("p");
    text.textContent = n.message;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.textContent = "OK";
    dismiss.dataset.testid = "notice-dismiss";
    dismiss.addEventListener("click", () => {
      box.remove();
      ui.notices.hidden = ui.notices.childElementCount === 0;
    });
    box.append(text, dismiss);
    ui.notices.append(box);
  }
  ui.notices.hidden = ui.notices.childElementCount === 0;
}

// ---------- history ----------

const TERMINAL = new Set(["complete", "failed"]);

/** Says what Delete did, on the server too. */
function showDeleted(d: Deleted) {
  const text =
    d.on_server === "deleted"
      ? "Deleted here and on the server: its link no longer plays."
      : d.on_server === "nothing"
        ? "Deleted (it was never uploaded)."
        : "Deleted here. The server could not delete it yet: Spool keeps trying until it does.";
  ui.historyMessage.textContent = text;
  ui.historyMessage.dataset.onServer = d.on_server;
  ui.historyMessage.classList.toggle("pending", d.on_server === "deleting");
  if (d.error) ui.historyMessage.title = d.error;
  else ui.historyMessage.removeAttribute("title");
  ui.historyMessage.hidden = false;
}
let historyTimer: number | undefined;
let historyShown = "";

function historyItem(h: HistoryItem): HTMLLIElement {
  const li = document.createElement("li");
  li.className = `history-item ${h.state}`;
  li.dataset.testid = "history-item";
  li.dataset.assetId = h.asset_id ?? "";
  li.dataset.uploadId = h.upload_id;
  li.dataset.state = h.state;

  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(h.created_at).toLocaleString();
  const state = document.createElement("span");
  state.className = `badge ${h.state}`;
  state.dataset.testid = "history-state";
  state.textContent = h.state === "deleting" ? "deleting on the server…" : h.state;
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = h.state === "complete" ? bytes(h.recorded) : `${bytes(h.confirmed)} of ${bytes(h.recorded)}`;
  // The server's poster of the recording (Spool servers have one at the
  // share link); hidden when there is none (yet).
  if (h.share_url && h.asset_id && h.state !== "deleting") {
    const img = document.createElement("img");
    img.className = "poster";
    img.alt = "";
    img.loading = "lazy";
    img.dataset.testid = "history-poster";
    img.addEventListener("error", () => (img.hidden = true));
    img.src = `${h.share_url}/poster.jpg`;
    li.append(img);
  }
  li.append(when, state, size);

  if (h.share_url && h.state !== "deleting") {
    const a = document.createElement("a");
    a.href = h.share_url;
    a.textContent = h.state === "complete" ? "link" : "link (when uploaded)";
    a.dataset.testid = "history-link";
    a.addEventListener("click", (e) => {
      e.preventDefault();
      void call(commands.openLink(h.share_url!));
    });
    li.append(a);
  }
  const actions = document.createElement("span");
  actions.className = "actions";
  const button = (label: string, testid: string, action: () => Promise<unknown>) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.testid = testid;
    b.addEventListener("click", async () => {
      b.disabled = true;
      await action();
      b.disabled = false;
      void refreshHistory();
    });
    actions.append(b);
  };
  if (h.state === "stalled" || h.state === "failed" || h.state === "reconnecting") {
    button(h.state === "failed" ? "Retry" : "Resume", "history-resume", () =>
      call(commands.resumeUpload(h.upload_id)),
    );
  }
  if (h.share_url && h.state === "complete") {
    button("Copy link", "history-copy", () => call(commands.copyText(h.share_url!)));
  }
  if (h.local_exists) {
    button("Show file", "history-reveal", () => call(commands.revealFile(h.upload_id)));
  }
  if (h.state === "deleting") {
    // Already deleted here: this only tries the server again now.
    button("Retry delete", "history-delete", async () => {
      const d = await call(commands.deleteRecording(h.upload_id, false));
      if (d) showDeleted(d);
      return d;
    });
  } else if (h.state !== "recording") {
    button("Delete", "history-delete", async () => {
      const question =
        h.state === "complete"
          ? "Delete this recording here and on the server? Its link will stop working."
          : "This recording is not fully uploaded. Stop its upload and delete it here and on the server?";
      if (!window.confirm(question)) return null;
      const alsoFile =
        h.local_exists && window.confirm("Delete the local file too? (Cancel keeps the file.)");
      const d = await call(commands.deleteRecording(h.upload_id, alsoFile));
      if (d) showDeleted(d);
      return d;
    });
  }
  li.append(actions);
  if (h.last_error && !TERMINAL.has(h.state)) {
    li.title = h.last_error;
    if (h.state === "deleting") {
      const err = document.createElement("div");
      err.className = "muted small note";
      err.dataset.testid = "history-error";
      err.textContent = `Not deleted on the server yet (${h.last_error}); Spool keeps trying.`;
      li.append(err);
    }
  } else if (h.last_error && h.state === "failed") {
    const err = document.createElement("div");
    err.className = "error small";
    err.textContent = h.last_error;
    li.append(err);
  }
  return li;
}

async function refreshHistory() {
  const items = await call(commands.listHistory());
  if (!items) return;
  const key = JSON.stringify(items);
  if (key !== historyShown) {
    historyShown = key;
    ui.historyList.replaceChildren(...items.map(historyItem));
    ui.historyEmpty.hidden = items.length > 0;
  }
  // Follow running uploads closely; stay quiet once everything is settled.
  window.clearTimeout(historyTimer);
  if (items.some((i) => !TERMINAL.has(i.state))) {
    historyTimer = window.setTimeout(() => void refreshHistory(), 1000);
  }
}

// ---------- settings ----------

// Every field stays reachable (typing an address selects its destination);
// the fields of the destinations not chosen are dimmed.
function showDestination() {
  const d = ui.destination.value;
  for (const kind of ["remote", "endpoint"]) {
    document
      .querySelectorAll<HTMLElement>(`#settings .${kind}`)
      .forEach((el) => el.classList.toggle("inactive", d !== kind));
  }
  ui.embeddedNote.hidden = d !== "embedded";
  document
    .querySelectorAll<HTMLElement>("#settings .embedded-only")
    .forEach((el) => el.classList.toggle("inactive", d !== "embedded"));
}

function fillSettings(v: SettingsView) {
  const s = v.settings;
  ui.destination.value = s.destination;
  ui.serverUrl.value = s.server_url;
  ui.tokenId.value = s.token_id;
  ui.tokenSecret.value = "";
  ui.tokenSecret.placeholder = v.has_secret ? "•••••••• (kept; type to replace)" : "";
  ui.endpointUrl.value = s.endpoint_url;
  ui.fps.value = String(s.fps);
  if (ui.fps.value !== String(s.fps)) {
    const o = document.createElement("option");
    o.value = String(s.fps);
    o.textContent = `${s.fps} fps`;
    ui.fps.append(o);
    ui.fps.value = String(s.fps);
  }
  ui.fragmentSecs.value = String(s.fragment_secs ?? 2);
  ui.crf.value = String(s.crf);
  if (ui.crf.value !== String(s.crf)) {
    const o = document.createElement("option");
    o.value = String(s.crf);
    o.textContent = `CRF ${s.crf}`;
    ui.crf.append(o);
    ui.crf.value = String(s.crf);
  }
  ui.maxHeight.value = s.max_height ? String(s.max_height) : "";
  ui.shareLan.checked = s.share_on_lan;
  ui.lanAddress.hidden = !v.lan_url;
  ui.lanAddress.textContent = v.lan_url
    ? `Share links use ${v.lan_url}: anyone on your local network can open them while Spool runs.`
    : "";
  ui.embeddedNote.textContent = v.embedded_url
    ? `Uploads go to the server inside Spool at ${v.embedded_url}; links work while Spool runs.`
    : `The embedded server is not running: ${v.embedded_error ?? "unknown error"}`;
  ui.secretNote.textContent =
    v.secret_storage === "memory"
      ? "No keyring on this system: the secret is kept only until Spool quits, never in a file."
      : v.secret_storage === "keyring"
        ? "The secret is kept in the system keyring, never in the settings file."
        : v.secret_storage === "environment"
          ? "This run's secret comes from SPOOL_TOKEN_SECRET."
          : "The secret goes to the system keyring (where there is none, it is kept until Spool quits), never into a file.";
  ui.envNote.hidden = !v.env_override;
  ui.envNote.textContent = v.env_override
    ? `SPOOL_SERVER_URL sends this run's uploads to ${v.env_override}.`
    : "";
  ui.paths.textContent = `Recordings: ${v.recordings_dir} · Logs: ${v.log_dir}`;
  showDestination();
}

function readSettings(): Settings {
  const maxHeight = ui.maxHeight.value ? Number(ui.maxHeight.value) : null;
  return {
    destination: ui.destination.value as Settings["destination"],
    server_url: ui.serverUrl.value.trim(),
    token_id: ui.tokenId.value.trim(),
    endpoint_url: ui.endpointUrl.value.trim(),
    fps: Number(ui.fps.value),
    fragment_secs: Number(ui.fragmentSecs.value),
    crf: Number(ui.crf.value),
    max_height: maxHeight,
    source: ui.source.value || null,
    share_on_lan: ui.shareLan.checked,
  };
}

ui.settingsButton.addEventListener("click", async () => {
  showError(ui.settingsMessage, null);
  const v = await call(commands.getSettings(), ui.settingsMessage);
  if (v) fillSettings(v);
  if (!ui.settings.open) ui.settings.showModal();
});

ui.destination.addEventListener("change", showDestination);
// Typing an address means "upload there": the last one typed wins.
for (const el of [ui.serverUrl, ui.tokenId, ui.tokenSecret]) {
  el.addEventListener("input", () => {
    if (ui.serverUrl.value.trim() !== "" && ui.destination.value !== "remote") {
      ui.destination.value = "remote";
      showDestination();
    }
  });
}
ui.endpointUrl.addEventListener("input", () => {
  if (ui.endpointUrl.value.trim() !== "" && ui.destination.value !== "endpoint") {
    ui.destination.value = "endpoint";
    showDestination();
  }
});

ui.settingsSave.addEventListener("click", async () => {
  showError(ui.settingsMessage, null);
  const secret = ui.tokenSecret.value;
  const saved = await call(
    commands.saveSettings({ settings: readSettings(), token_secret: secret === "" ? null : secret }),
    ui.settingsMessage,
  );
  if (saved) {
    fillSettings(saved);
    ui.settings.close();
  }
});
ui.settingsCancel.addEventListener("click", () => ui.settings.close());

// ---------- start ----------

async function main() {
  const channel = new Channel<RecordingView>();
  channel.onmessage = render;
  await commands.watchRecording(channel);
  await events.historyChanged.listen(() => void refreshHistory());
  await events.recordingToggled.listen(() => void refreshHistory());
  showNotices(await commands.takeNotices());
  await Promise.all([loadSources(), refreshHistory()]);
  document.body.dataset.ready = "true";
}

void main().catch((e) => showError(ui.error, String(e)));
export {};
