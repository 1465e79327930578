import { defineConfig } from "vite";

// The UI is embedded into the app binary (tauri.conf.json: frontendDist).
export default defineConfig({
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "safari15",
    sourcemap: false,
  },
});
