// Sound beside Record: the microphone picker, the system-sound switch, a
// level meter for each, Mute while recording, and a line saying what is
// recorded (or why the microphone is not: no audio server, no input, a
// device lost). The choices are remembered in the settings.

import { commands, type AudioDevicesView, type RecordingView } from "./bindings";
import { $, call, setAttr, setStyleWidth, setText } from "./util";

const ui = {
  mic: $<HTMLSelectElement>("mic-select"),
  system: $<HTMLInputElement>("system-audio-toggle"),
  refresh: $<HTMLButtonElement>("refresh-audio"),
  micLevel: $("mic-level"),
  systemLevel: $("system-level"),
  mute: $<HTMLButtonElement>("mute-button"),
  status: $("audio-status"),
};

/** The microphone setting as saved: null until the user picks one. */
let savedMic: string | null = null;
let devices: AudioDevicesView = { inputs: [], outputs: [], unavailable: null };
let last: RecordingView | null = null;

function option(value: string, label: string): HTMLOptionElement {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  return o;
}

/** What the picker shows for the saved setting. */
function shownMic(): string {
  if (savedMic != null) return savedMic;
  // Not chosen yet: the default microphone when there is one.
  return devices.inputs.length > 0 ? "default" : "none";
}

/** What will be recorded (or why not), before a recording. */
function idleStatus(): string {
  const mic = shownMic();
  const system = ui.system.checked ? " · system sound on" : "";
  if (mic === "none") {
    if (savedMic == null && devices.unavailable) return `No microphone: ${devices.unavailable}${system}`;
    if (savedMic == null) return `No microphone: the audio server has no input${system}`;
    return `Microphone off${system}`;
  }
  if (devices.unavailable) return `No microphone: ${devices.unavailable}${system}`;
  if (mic === "default") {
    const d = devices.inputs.find((i) => i.default) ?? devices.inputs[0];
    return d ? `Microphone: ${d.description}${system}` : `No microphone: the audio server has no input${system}`;
  }
  const d = devices.inputs.find((i) => i.name === mic);
  return d ? `Microphone: ${d.description}${system}` : `Microphone ${mic} is not connected${system}`;
}

/** What the recording's sound is doing, while it records. */
function liveStatus(v: RecordingView): string {
  const parts: string[] = [];
  if (v.audio_note) parts.push(v.audio_note);
  if (v.mic_state === "lost") parts.push("Microphone lost — recording silence");
  else if (v.mic_state === "restored") parts.push("Microphone back");
  if (v.system_state === "lost") parts.push("System sound lost — recording silence");
  else if (v.system_state === "restored") parts.push("System sound back");
  if (!v.has_audio) {
    if (parts.length === 0) parts.push("Recording video only (no sound)");
  } else if (v.muted) {
    parts.push("Muted — recording silence");
  } else if (parts.length === 0 || v.audio_note) {
    const what = [v.mic_state ? "microphone" : null, v.system_state ? "system sound" : null].filter(Boolean);
    parts.push(`Recording sound: ${what.join(" + ") || "on"}`);
  }
  return parts.join(" · ");
}

function meter(el: HTMLElement, level: number | null) {
  const l = Math.max(0, Math.min(1, level ?? 0));
  setAttr(el, "data-level", String(l));
  setAttr(el, "aria-valuenow", String(l));
  setStyleWidth(el.querySelector<HTMLElement>(".fill")!, `${(l * 100).toFixed(0)}%`);
}

/** Updates the sound's part of the window from a recording view. */
export function renderAudio(v: RecordingView) {
  last = v;
  const busy = v.capturing || v.state === "countdown";
  if (ui.mic.disabled !== busy) ui.mic.disabled = busy;
  if (ui.system.disabled !== busy) ui.system.disabled = busy;
  if (ui.refresh.disabled !== busy) ui.refresh.disabled = busy;
  const canMute = v.capturing && v.has_audio;
  if (ui.mute.disabled !== !canMute) ui.mute.disabled = !canMute;
  const muted = canMute && v.muted;
  setAttr(ui.mute, "aria-pressed", String(muted));
  setText(ui.mute, muted ? "🔈 Unmute" : "🔇 Mute");
  meter(ui.micLevel, v.capturing ? v.mic_level : 0);
  meter(ui.systemLevel, v.capturing ? v.system_level : 0);
  ui.micLevel.classList.toggle("muted", muted);
  ui.systemLevel.classList.toggle("muted", muted);
  const lost = v.capturing && (v.mic_state === "lost" || v.system_state === "lost");
  ui.status.classList.toggle("warn", lost || (v.audio_note != null && v.state !== "idle"));
  // After a recording its note stays (why it had no microphone); a fresh
  // idle view says what the next one will record.
  const text = v.capturing ? liveStatus(v) : v.audio_note && v.state !== "idle" ? v.audio_note : idleStatus();
  setText(ui.status, text);
}

function showIdle() {
  if (last) renderAudio(last);
  else setText(ui.status, idleStatus());
}

/** Lists the audio devices and shows the saved choices. */
export async function loadAudio() {
  const [listed, settings] = await Promise.all([commands.listAudioDevices(), call(commands.getSettings())]);
  devices = listed;
  if (settings) {
    savedMic = settings.settings.mic;
    ui.system.checked = settings.settings.system_audio;
  }
  const options = [option("none", "No microphone"), option("default", "Default microphone")];
  for (const d of devices.inputs) options.push(option(d.name, d.default ? `${d.description} (default)` : d.description));
  const shown = shownMic();
  if (!options.some((o) => o.value === shown)) options.push(option(shown, `${shown} (not connected)`));
  ui.mic.replaceChildren(...options);
  ui.mic.value = shown;
  showIdle();
}

/** The settings dialog saves these too (they are part of the settings). */
export function audioSettings(): { mic: string | null; system_audio: boolean } {
  return { mic: savedMic, system_audio: ui.system.checked };
}

async function save(mic: string | null) {
  const ok = await call(commands.setAudio(mic, ui.system.checked));
  if (ok !== undefined) savedMic = mic;
  showIdle();
}

ui.mic.addEventListener("change", () => void save(ui.mic.value));
// The switch alone keeps the microphone as it was (chosen or not).
ui.system.addEventListener("change", () => void save(savedMic));
ui.refresh.addEventListener("click", () => void loadAudio());

ui.mute.addEventListener("click", async () => {
  ui.mute.disabled = true;
  const muted = await call(commands.toggleMute());
  if (muted !== undefined) setAttr(ui.mute, "aria-pressed", String(muted));
  ui.mute.disabled = !(last?.capturing && last.has_audio);
});
