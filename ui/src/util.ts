// Small helpers shared by the window's modules: element lookup, formatting,
// minimal DOM writes, and unwrapping typed command results into shown errors.

import type { IpcError } from "./bindings";
import { describe } from "./errors";

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

export function bytes(n: number): string {
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

export function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function showError(el: HTMLElement, e: IpcError | string | null) {
  if (!e) {
    el.hidden = true;
    el.textContent = "";
    delete el.dataset.code;
    return;
  }
  const err: IpcError = typeof e === "string" ? { code: "ERR_INTERNAL", message: e } : e;
  el.hidden = false;
  el.textContent = describe(err.code, err.message);
  el.dataset.code = err.code;
}

/**
 * Unwraps a typed result; an error is shown in `where` and becomes
 * `undefined` (a command that returns nothing succeeds with `null`).
 */
export async function call<T>(
  p: Promise<{ status: "ok"; data: T } | { status: "error"; error: IpcError }>,
  where: HTMLElement = $("error-message"),
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

/** Writes only what changed: every write costs WebKit a layout and a paint. */
export function setText(el: HTMLElement, text: string) {
  if (el.textContent !== text) el.textContent = text;
}
export function setAttr(el: HTMLElement, name: string, value: string) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}
export function setStyleWidth(el: HTMLElement, width: string) {
  if (el.style.width !== width) el.style.width = width;
}
