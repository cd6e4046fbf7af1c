// The 3D view of the selected face and its toolbar: reset, photo pose or straight on, auto-rotate, the look
// (texture, shape, wireframe) and "Photo | 3D" side by side. On touch screens the view lets vertical swipes scroll
// the page until it is tapped (then one finger turns the face); a tap outside lets go again.
import { fetchBlob } from "./api.js";
import { friendlyError } from "./messages.js";
import { FaceViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const TAP_MS = 300;
const TAP_MOVE_PX = 10;
const COARSE = window.matchMedia("(pointer: coarse)");

export class ViewerTools {
  constructor(crops) {
    this.crops = crops;
    this.canvas = $("viewer-canvas");
    this.status = $("viewer-status");
    this.viewer = undefined;
    this.index = 0;
    $("view-reset").addEventListener("click", () => this.viewer?.reset());
    $("view-pose").addEventListener("click", () => this.togglePose());
    $("view-spin").addEventListener("click", () => this.viewer?.setSpin(!this.viewer.spinning));
    $("view-look").addEventListener("change", (event) => this.viewer?.setLook(event.target.value));
    $("view-compare").addEventListener("click", () => this.toggleCompare());
    this.setUpTouch();
    window.face3dViewer = () => this.viewer?.state() ?? null;     // the browser tests read the camera here
  }

  async loadFace(glb, face, generation, currentGeneration) {
    delete this.canvas.dataset.loaded;
    if (!glb) return this.setStatus("This face has no GLB file.");
    if (!this.ensureViewer()) return;
    this.setStatus("Loading the 3D face…");
    const stale = () => currentGeneration() !== generation || this.loading !== glb;
    this.loading = glb;
    try {
      const url = URL.createObjectURL(await fetchBlob(glb.url));
      try {
        if (!stale()) await this.viewer.show(url, face ?? {});
      } finally {
        URL.revokeObjectURL(url);
      }
      if (stale()) return;
      this.canvas.dataset.loaded = glb.name;
      this.setStatus("");
    } catch (error) {
      if (!stale()) this.setStatus(friendlyError(error.code, error.message));
    }
  }

  ensureViewer() {
    if (this.viewer === undefined) {
      try {
        this.viewer = new FaceViewer(this.canvas);
        this.viewer.onSpinChange = (on) => $("view-spin").setAttribute("aria-pressed", String(on));
      } catch {
        this.viewer = null;
      }
    }
    if (!this.viewer) this.setStatus("This browser cannot show 3D (WebGL is off): download the GLB below instead.");
    return Boolean(this.viewer);
  }

  setStatus(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  togglePose(on = $("view-pose").getAttribute("aria-pressed") !== "true") {
    $("view-pose").setAttribute("aria-pressed", String(on));
    $("view-pose").textContent = on ? "Photo pose" : "Straight on";
    this.viewer?.setPhotoPose(on);
  }

  toggleCompare() {
    const on = $("view-compare").getAttribute("aria-pressed") !== "true";
    $("view-compare").setAttribute("aria-pressed", String(on));
    $("viewer-row").classList.toggle("comparing", on);
    $("compare-figure").hidden = !on;
    if (on) this.togglePose(true);
    this.showCrop(this.index);
  }

  showCrop(index) {
    this.index = index;
    if ($("compare-figure").hidden) return;
    const crop = $("compare-crop");
    const width = Math.max(crop.clientWidth, 1);
    const height = Math.max(crop.clientHeight, 1);
    this.crops.drawInto(crop, index, [width, height].map((side) => Math.round(side * (window.devicePixelRatio || 1))));
  }

  setUpTouch() {
    const row = $("viewer-row");
    let down = null;
    this.canvas.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "touch") down = { x: event.clientX, y: event.clientY, at: performance.now() };
    });
    this.canvas.addEventListener("pointerup", (event) => {
      if (event.pointerType !== "touch" || !down) return;
      const still = Math.hypot(event.clientX - down.x, event.clientY - down.y) < TAP_MOVE_PX;
      if (still && performance.now() - down.at < TAP_MS) this.engage(true);
      down = null;
    });
    document.addEventListener("pointerdown", (event) => {
      if (!row.contains(event.target)) this.engage(false);
    });
    $("viewer-touch").hidden = !COARSE.matches;
  }

  engage(on) {
    this.canvas.classList.toggle("engaged", on);
    $("viewer-touch").hidden = on || !COARSE.matches;
  }
}
