// The result of one finished job: a tab per face with its 3D view and files, the annotated photo, the turntable.
import { fetchBlob } from "./api.js";
import { formatBytes, friendlyError } from "./messages.js";
import { FaceViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const faceFiles = (i) => [
  [`face_${i}.glb`, "GLB"], [`face_${i}.obj`, "OBJ"], [`face_${i}.mtl`, "MTL"], [`face_${i}_texture.png`, "Texture PNG"],
  [`face_${i}.stl`, "STL"], [`face_${i}.3mf`, "3MF"], [`face_${i}.ply`, "PLY"], [`face_${i}.usdz`, "USDZ"],
];
const JOB_FILES = [["result.json", "JSON"], ["vis.png", "Photo PNG"], ["turntable.mp4", "MP4"], ["turntable.gif", "GIF"]];
const DEGREES = (value) => `${Math.round(value)}°`;

export class ResultView {
  constructor(notify) {
    this.notify = notify;
    this.section = $("result");
    this.tabs = $("face-tabs");
    this.status = $("viewer-status");
    this.canvas = $("viewer-canvas");
    this.viewer = undefined;
    this.job = null;
    this.blobUrls = [];
    this.generation = 0;
    this.tabs.addEventListener("keydown", (event) => this.onTabKey(event));
  }

  get jobId() {
    return this.job?.id ?? null;
  }

  show(job, { focus = false } = {}) {
    this.generation += 1;
    this.releaseBlobs();
    this.job = job;
    this.artifacts = new Map(job.artifacts.map((artifact) => [artifact.name, artifact]));
    this.section.hidden = false;
    $("result-title").textContent = `Result: ${job.input_name || job.id}`;
    $("result-summary").textContent = summary(job);
    this.buildTabs(job.faces);
    this.fillDownloads($("job-downloads"), JOB_FILES);
    this.loadMedia($("vis-figure"), $("vis-image"), "vis.png");
    this.loadMedia($("video-figure"), $("turntable"), "turntable.mp4");
    this.selectFace(0);
    if (focus) {
      const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      this.section.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
      this.tabs.querySelector('[aria-selected="true"]')?.focus({ preventScroll: true });
    }
  }

  buildTabs(faces) {
    this.tabs.replaceChildren(...faces.map((face, i) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.id = `face-tab-${i}`;
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", "face-panel");
      tab.textContent = `Face ${i + 1}`;
      tab.addEventListener("click", () => this.selectFace(i));
      return tab;
    }));
  }

  onTabKey(event) {
    const tabs = [...this.tabs.children];
    const current = tabs.findIndex((tab) => tab.getAttribute("aria-selected") === "true");
    const target = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (target === undefined || !tabs.length) return;
    event.preventDefault();
    const index = (target + tabs.length) % tabs.length;
    this.selectFace(index);
    tabs[index].focus();
  }

  selectFace(index) {
    [...this.tabs.children].forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
    });
    $("face-panel").setAttribute("aria-labelledby", `face-tab-${index}`);
    const face = this.job.faces[index];
    $("face-facts").textContent = face ? facts(face) : "";
    this.fillDownloads($("face-downloads"), faceFiles(index));
    this.loadFace(index);
  }

  async loadFace(index) {
    const generation = this.generation;
    const glb = this.artifacts.get(`face_${index}.glb`);
    delete this.canvas.dataset.loaded;
    if (!glb) return this.setStatus("This face has no GLB file.");
    if (!this.ensureViewer()) return;
    this.setStatus("Loading the 3D face…");
    try {
      const url = URL.createObjectURL(await fetchBlob(glb.url));
      try {
        if (generation === this.generation) await this.viewer.show(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      if (generation !== this.generation) return;
      this.canvas.dataset.loaded = glb.name;
      this.setStatus("");
    } catch (error) {
      if (generation === this.generation) this.setStatus(friendlyError(error.code, error.message));
    }
  }

  ensureViewer() {
    if (this.viewer === undefined) {
      try {
        this.viewer = new FaceViewer(this.canvas);
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

  async loadMedia(figure, element, name) {
    const generation = this.generation;
    figure.hidden = true;
    element.removeAttribute("src");
    const artifact = this.artifacts.get(name);
    if (!artifact) return;
    try {
      const url = this.keepBlob(await fetchBlob(artifact.url));
      if (generation !== this.generation) return;
      element.src = url;
      figure.hidden = false;
    } catch (error) {
      console.warn(`could not load ${name}: ${error.message}`);
    }
  }

  fillDownloads(container, files) {
    container.replaceChildren(...files.filter(([name]) => this.artifacts.has(name)).map(([name, label]) => {
      const artifact = this.artifacts.get(name);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "download";
      button.dataset.artifact = name;
      button.setAttribute("aria-label", `Download ${name}`);
      button.title = name;
      button.textContent = `${label} ${formatBytes(artifact.size)}`.trim();
      button.addEventListener("click", () => this.download(button, artifact));
      return button;
    }));
  }

  async download(button, artifact) {
    button.disabled = true;
    try {
      const link = document.createElement("a");
      link.href = this.keepBlob(await fetchBlob(artifact.url));
      link.download = artifact.name;
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      this.notify(`${artifact.name}: ${friendlyError(error.code, error.message)}`);
    } finally {
      button.disabled = false;
    }
  }

  keepBlob(blob) {
    const url = URL.createObjectURL(blob);
    this.blobUrls.push(url);
    return url;
  }

  releaseBlobs() {
    this.blobUrls.forEach((url) => URL.revokeObjectURL(url));
    this.blobUrls = [];
  }
}

function summary(job) {
  const faces = job.faces.length;
  const took = Date.parse(job.finished_at) - Date.parse(job.started_at);
  const seconds = took >= 0 ? ` · ${(took / 1000).toFixed(1)} s` : "";
  const warnings = job.warnings?.length ? ` · notes: ${job.warnings.join(", ")}` : "";
  return `${faces} face${faces === 1 ? "" : "s"} · ${job.engine} engine${seconds}${warnings}`;
}

function facts(face) {
  const pose = `yaw ${DEGREES(face.yaw)}, pitch ${DEGREES(face.pitch)}, roll ${DEGREES(face.roll)}`;
  const notes = face.warnings?.length ? ` · ${face.warnings.join(", ").replaceAll("_", " ")}` : "";
  return `Score ${face.score.toFixed(2)} · ${pose}${notes}`;
}
