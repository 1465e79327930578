// Spool's window: the recorder (source, Record/Stop, elapsed time, the upload
// keeping pace, the link), the history, and the settings. Everything it does
// goes through the generated, typed bindings (bindings.ts); errors arrive as
// {code, message} and are shown, never swallowed.

import { Channel } from "@tauri-apps/api/core";
import { commands, events, type Notice, type RecordingView, type Settings, type SettingsView } from "./bindings";
import { audioSettings, loadAudio, renderAudio } from "./audio";
import { refreshHistory } from "./history";
import { startUpdates } from "./updates";
import { $, bytes, call, clock, setAttr, setStyleWidth, setText, showError } from "./util";

const ui = {
  source: $<HTMLSelectElement>("source-select"),
  refreshSources: $<HTMLButtonElement>("refresh-sources"),
  record: $<HTMLButtonElement>("record-button"),
  stop: $<HTMLButtonElement>("stop-button"),
  pause: $<HTMLButtonElement>("pause-button"),
  title: $<HTMLInputElement>("title-input"),
  countdown: $("countdown"),
  countdownCancel: $<HTMLButtonElement>("countdown-cancel"),
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
  managed: $("settings-managed"),
  fps: $<HTMLSelectElement>("settings-fps"),
  fragmentSecs: $<HTMLInputElement>("settings-fragment-secs"),
  crf: $<HTMLSelectElement>("settings-crf"),
  qualityFirst: $<HTMLInputElement>("settings-quality-first"),
  maxHeight: $<HTMLSelectElement>("settings-max-height"),
  countdownSecs: $<HTMLSelectElement>("settings-countdown"),
  paths: $("settings-paths"),
  settingsMessage: $("settings-message"),
  settingsSave: $<HTMLButtonElement>("settings-save"),
  settingsCancel: $<HTMLButtonElement>("settings-cancel"),
};

// ---------- recorder ----------

/** A default title for the next recording, until the user types one. */
let titleTyped = false;
function defaultTitle(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `Recording ${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
function refreshDefaultTitle() {
  if (!titleTyped) ui.title.value = defaultTitle();
  ui.title.placeholder = defaultTitle();
}
ui.title.addEventListener("input", () => (titleTyped = ui.title.value.trim() !== ""));

/** What the upload does while the recording is paused. */
/** The status line for each state (exhaustive: a new state is a type error). */
function statusText(v: RecordingView): string {
  switch (v.state) {
    case "idle":
      return "ready";
    case "countdown":
      return `starting in ${v.countdown ?? 0}…`;
    case "recording":
      return "recording";
    case "paused":
      return `paused — ${uploadDetail(v)}`;
    case "reconnecting": {
      const retry = v.next_retry_in_ms != null ? `, next try in ${Math.ceil(v.next_retry_in_ms / 1000)} s` : "";
      return `reconnecting… (attempt ${v.attempt}${retry})`;
    }
    case "stalled":
      return "stalled — still retrying, nothing is lost";
    case "uploading":
      return "uploading the last fragment…";
    case "complete":
      return "complete";
    case "failed":
      return "failed";
    case "saved":
      return "saved locally";
    default: {
      const unknown: never = v.state;
      return String(unknown);
    }
  }
}

function uploadDetail(v: RecordingView): string {
  switch (v.upload_state) {
    case "reconnecting": {
      const retry = v.next_retry_in_ms != null ? `, next try in ${Math.ceil(v.next_retry_in_ms / 1000)} s` : "";
      return `upload reconnecting… (attempt ${v.attempt}${retry})`;
    }
    case "stalled":
      return "upload stalled — still retrying, nothing is lost";
    case null:
    case undefined:
      return "nothing is captured";
    default:
      return v.backlog > 0 ? "uploading what was recorded" : "everything recorded is uploaded";
  }
}

let wasBusy = false;
function render(v: RecordingView) {
  const counting = v.state === "countdown";
  const busy = v.capturing || counting;
  if (ui.record.disabled !== busy) ui.record.disabled = busy;
  // Stop also cancels the countdown.
  if (ui.stop.disabled !== !busy) ui.stop.disabled = !busy;
  if (ui.source.disabled !== busy) ui.source.disabled = busy;
  if (ui.title.disabled !== busy) ui.title.disabled = busy;
  if (ui.pause.disabled !== !v.capturing) ui.pause.disabled = !v.capturing;
  setAttr(ui.pause, "aria-pressed", String(v.paused));
  setText(ui.pause, v.paused ? "▶ Resume" : "❚❚ Pause");
  if (ui.countdown.parentElement!.hidden !== !counting) ui.countdown.parentElement!.hidden = !counting;
  setText(ui.countdown, counting && v.countdown != null ? String(v.countdown) : "");
  if (wasBusy && !busy) {
    // The recording has its title: the next one gets a fresh default.
    titleTyped = false;
    refreshDefaultTitle();
  }
  wasBusy = busy;
  setText(ui.elapsed, clock(v.elapsed_ms));
  setAttr(ui.pause, "data-paused-ms", String(v.paused_ms));
  if (v.duration_ms != null) setAttr(ui.elapsed, "data-duration-ms", String(v.duration_ms));
  else if (ui.elapsed.hasAttribute("data-duration-ms")) ui.elapsed.removeAttribute("data-duration-ms");
  if (ui.elapsed.classList.contains("paused") !== v.paused) ui.elapsed.classList.toggle("paused", v.paused);

  const text = statusText(v);
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
  renderAudio(v);
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
  const title = ui.title.value.trim();
  const started = await call(commands.startRecording(ui.source.value, title === "" ? null : title));
  if (!started) ui.record.disabled = false;
  void refreshHistory();
});

ui.stop.addEventListener("click", async () => {
  ui.stop.disabled = true;
  await call(commands.stopRecording());
});

ui.countdownCancel.addEventListener("click", () => void call(commands.stopRecording()));

ui.pause.addEventListener("click", async () => {
  ui.pause.disabled = true;
  const paused = await call(commands.togglePause());
  if (paused !== undefined) setAttr(ui.pause, "aria-pressed", String(paused));
  ui.pause.disabled = false;
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
  ui.qualityFirst.checked = s.quality_first ?? false;
  ui.maxHeight.value = s.max_height ? String(s.max_height) : "";
  ui.countdownSecs.value = String(s.countdown_secs);
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
  showManaged(v);
  showDestination();
}

/** A destination locked by the managed policy is shown read-only; the token
 *  secret stays the user's to enter. */
function showManaged(v: SettingsView) {
  const locked = v.managed?.lock_destination ?? false;
  ui.managed.hidden = !locked;
  ui.managed.title = v.managed ? `Set by ${v.managed.path}` : "";
  for (const el of [ui.destination, ui.serverUrl, ui.tokenId, ui.endpointUrl]) {
    el.disabled = locked;
  }
  const embedded = ui.destination.querySelector<HTMLOptionElement>('option[value="embedded"]');
  if (embedded) embedded.disabled = v.managed ? !v.managed.allow_embedded : false;
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
    quality_first: ui.qualityFirst.checked,
    max_height: maxHeight,
    source: ui.source.value || null,
    share_on_lan: ui.shareLan.checked,
    countdown_secs: Number(ui.countdownSecs.value),
    ...audioSettings(),
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
  refreshDefaultTitle();
  window.setInterval(refreshDefaultTitle, 30_000);
  showNotices(await commands.takeNotices());
  await Promise.all([loadSources(), refreshHistory(), loadAudio(), startUpdates()]);
  document.body.dataset.ready = "true";
}

void main().catch((e) => showError(ui.error, String(e)));
export {};
