// The update banner and status line: what the app's updater (updates.rs)
// reports, shown as it changes. The status line always starts with the
// state word (checking, up-to-date, available, downloading, verified,
// waiting, installing, failed, disabled); a failure shows its error code.
// An unreachable update server is "up-to-date" with its code in the line,
// never a banner: nothing is wrong with the app.

import { commands, events, type UpdateView } from "./bindings";
import { $, bytes, showError } from "./util";

const ui = {
  banner: $("update-banner"),
  bannerText: $("update-banner-text"),
  install: $<HTMLButtonElement>("update-install-button"),
  status: $("update-status"),
  check: $<HTMLButtonElement>("update-check-button"),
  footer: $("update-status").parentElement as HTMLElement,
  error: $("error-message"),
};

/** The status line: the state word, then what it means. */
export function statusText(v: UpdateView): string {
  let text: string = v.state;
  if (v.state === "downloading" && v.downloaded != null) {
    text += ` — ${v.total ? `${bytes(v.downloaded)} of ${bytes(v.total)}` : bytes(v.downloaded)}`;
  } else if (v.message) {
    text += ` — ${v.message}`;
  }
  return v.code ? `${text} (${v.code})` : text;
}

/** Shown from "available" until installed, and on a failure of a named version. */
function bannerText(v: UpdateView): string | null {
  const ver = v.version ? `Spool ${v.version}` : "An update";
  switch (v.state) {
    case "available":
      return `${ver} is available; it downloads when nothing is being recorded or uploaded.`;
    case "downloading":
      return `Downloading ${ver}…`;
    case "verified":
      return v.dry_run
        ? `${ver} is downloaded and verified (dry run: it will not be installed).`
        : `${ver} is downloaded and verified. Install it now? Spool restarts.`;
    case "waiting":
      return `${ver} installs when the recording and its upload are done.`;
    case "installing":
      return `Installing ${ver}…`;
    case "failed":
      // The status line has the details; the banner says what it means.
      return v.version
        ? v.code === "ERR_UPDATE_SIGNATURE"
          ? `${ver} was refused: its signature does not verify (${v.code}). Nothing was installed.`
          : `${ver} could not be installed${v.code ? ` (${v.code})` : ""}; Spool tries again later.`
        : null;
    default:
      return null;
  }
}

function render(v: UpdateView) {
  ui.status.textContent = statusText(v);
  ui.footer.dataset.state = v.state;
  if (v.code) ui.status.dataset.code = v.code;
  else delete ui.status.dataset.code;
  const text = bannerText(v);
  ui.banner.hidden = text === null;
  ui.banner.dataset.state = v.state;
  ui.bannerText.textContent = text ?? "";
  // Install is offered whenever there is something to install; a click
  // during a recording makes it wait rather than interrupt.
  ui.install.hidden = !["available", "downloading", "verified", "waiting"].includes(v.state);
  ui.install.disabled = v.state === "waiting" || v.state === "downloading";
  ui.install.textContent = v.state === "available" ? "Download and install" : "Install";
  ui.check.disabled = ["checking", "downloading", "installing", "disabled"].includes(v.state);
}

export async function startUpdates() {
  await events.updateChanged.listen((e) => render(e.payload));
  render(await commands.getUpdate());
  ui.install.addEventListener("click", async () => {
    const r = await commands.installUpdate();
    if (r.status === "ok") render(r.data);
    else showError(ui.error, r.error);
  });
  ui.check.addEventListener("click", async () => render(await commands.checkForUpdates()));
}
