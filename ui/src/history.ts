// The history: every recording in the journal with its upload's state, its
// title (renamed in place: here, and on the Spool server it went to), its
// link and poster, and the actions that apply (resume, copy, show, delete).

import { commands, type Deleted, type HistoryItem, type HistoryState, type Renamed } from "./bindings";
import { $, bytes, call } from "./util";

/** The badge of each history state (a new state is a type error here). */
const STATE_WORDS: Record<HistoryState, string> = {
  recording: "recording",
  uploading: "uploading",
  reconnecting: "reconnecting",
  stalled: "stalled",
  complete: "complete",
  failed: "failed",
  deleting: "deleting on the server…",
};

const ui = {
  historyList: $<HTMLUListElement>("history-list"),
  historyEmpty: $("history-empty"),
  historyMessage: $("history-message"),
};

const TERMINAL = new Set(["complete", "failed"]);

/** Says what Delete did, on the server too. */
export function showDeleted(d: Deleted) {
  const text =
    d.on_server === "deleted"
      ? "Deleted here and on the server: its link no longer plays."
      : d.on_server === "nothing"
        ? "Deleted (it was never uploaded)."
        : "Deleted here. The server could not delete it yet: Spool keeps trying until it does.";
  showMessage(text, d.on_server, d.on_server === "deleting", d.error);
}

function showMessage(text: string, onServer: string, pending: boolean, error: string | null) {
  ui.historyMessage.textContent = text;
  ui.historyMessage.dataset.onServer = onServer;
  ui.historyMessage.classList.toggle("pending", pending);
  if (error) ui.historyMessage.title = error;
  else ui.historyMessage.removeAttribute("title");
  ui.historyMessage.hidden = false;
}

/** Says what Rename did, on the server too. */
function showRenamed(r: Renamed) {
  const text =
    r.on_server === "renamed"
      ? `Renamed to “${r.title}” here and on the server.`
      : r.on_server === "local"
        ? `Renamed to “${r.title}” in Spool only: this destination is a plain TUS endpoint, which keeps no titles.`
        : `Renamed to “${r.title}” here; the server could not be updated (${r.error ?? "unknown error"}).`;
  showMessage(text, r.on_server, r.on_server === "failed", r.error);
}

let historyTimer: number | undefined;
let historyShown = "";
/** The item being renamed: the list is not redrawn under the user's typing. */
let renaming: string | null = null;

/** Turns the title into a field; Enter (or Save) renames, Escape cancels. */
function startRename(h: HistoryItem, title: HTMLElement) {
  renaming = h.upload_id;
  const form = document.createElement("form");
  form.className = "rename";
  const input = document.createElement("input");
  input.type = "text";
  input.value = h.title ?? "";
  input.maxLength = 1024;
  input.required = true;
  input.dataset.testid = "history-rename-input";
  input.setAttribute("aria-label", "New title");
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  save.dataset.testid = "history-rename-save";
  const done = () => {
    renaming = null;
    historyShown = "";
    void refreshHistory();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    save.disabled = input.disabled = true;
    const r = await call(commands.renameRecording(h.upload_id, t), ui.historyMessage);
    if (r) showRenamed(r);
    else ui.historyMessage.hidden = false;
    done();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") done();
  });
  form.append(input, save);
  title.replaceWith(form);
  input.focus();
  input.select();
}

function historyItem(h: HistoryItem): HTMLLIElement {
  const li = document.createElement("li");
  li.className = `history-item ${h.state}`;
  li.dataset.testid = "history-item";
  li.dataset.assetId = h.asset_id ?? "";
  li.dataset.uploadId = h.upload_id;
  li.dataset.state = h.state;

  const title = document.createElement("span");
  title.className = "title";
  title.dataset.testid = "history-title";
  title.textContent = h.title ?? "Untitled recording";
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(h.created_at).toLocaleString();
  const state = document.createElement("span");
  state.className = `badge ${h.state}`;
  state.dataset.testid = "history-state";
  state.textContent = STATE_WORDS[h.state];
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
  li.append(title, when, state, size);

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
  if (h.state !== "deleting") {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Rename";
    b.dataset.testid = "history-rename";
    b.addEventListener("click", () => startRename(h, title));
    actions.append(b);
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

export async function refreshHistory() {
  const items = await call(commands.listHistory());
  if (!items) return;
  const key = JSON.stringify(items);
  if (key !== historyShown && renaming === null) {
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

