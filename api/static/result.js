// The result of one finished job: a tab per face (numbered from 0, as in vis.png, the files, the CLI and the JSON)
// with its 3D view and files, the photo with clickable face boxes, the annotated photo, the turntable, one zip.
import { archiveUrl, fetchBlob, inputUrl } from "./api.js";
import { SCORE_HELP, faceNotes, formatBytes, friendlyError } from "./messages.js";
import { FaceCrops } from "./photo.js";
import { ViewerTools } from "./tools.js";

const $ = (id) => document.getElementById(id);
const faceFiles = (i) => [
  [`face_${i}.glb`, "GLB"], [`face_${i}.obj`, "OBJ"], [`face_${i}.mtl`, "MTL"], [`face_${i}_texture.png`, "Texture PNG"],
  [`face_${i}.stl`, "STL"], [`face_${i}.3mf`, "3MF"], [`face_${i}.ply`, "PLY"], [`face_${i}.usdz`, "USDZ"],
];
const JOB_FILES = [["result.json", "JSON"], ["vis.png", "Photo PNG"], ["turntable.mp4", "MP4"], ["turntable.gif", "GIF"]];
const DEGREES = (value) => `${Math.round(value)}°`;
const isReady = (artifact) => artifact.ready !== false;      // before the worker lists planned files: all stored

export class ResultView {
  constructor(notify) {
    this.notify = notify;
    this.section = $("result");
    this.tabs = $("face-tabs");
    this.job = null;
    this.blobUrls = [];
    this.generation = 0;
    this.index = 0;
    this.crops = new FaceCrops((index) => this.selectFace(index, { focusTab: true }));
    this.tools = new ViewerTools(this.crops);
    this.tabs.addEventListener("keydown", (event) => this.onTabKey(event));
    $("download-all").addEventListener("click", (event) => this.downloadAll(event.currentTarget));
  }

  get jobId() {
    return this.job?.id ?? null;
  }

  async show(job, { focus = false } = {}) {
    this.generation += 1;
    this.releaseBlobs();
    this.job = job;
    this.artifacts = new Map(job.artifacts.filter(isReady).map((artifact) => [artifact.name, artifact]));
    this.section.hidden = false;
    this.section.dataset.jobId = job.id;
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
    await this.loadPhoto(job);
  }

  async loadPhoto(job) {
    const generation = this.generation;
    let url = null;
    try {
      url = this.keepBlob(await fetchBlob(inputUrl(job.id)));
    } catch {
      // the photo is not stored any more: no boxes or thumbnails, the rest still works
    }
    if (generation !== this.generation) return;
    await this.crops.load(url, job.faces);
    if (generation !== this.generation) return;
    [...this.tabs.children].forEach((tab, i) => this.crops.thumbInto(tab.querySelector(".tab-thumb"), i));
    this.tools.showCrop(this.index);
  }

  buildTabs(faces) {
    this.tabs.replaceChildren(...faces.map((face, i) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.id = `face-tab-${i}`;
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", "face-panel");
      tab.innerHTML = '<canvas class="tab-thumb" width="40" height="40" aria-hidden="true"></canvas><span></span>';
      tab.querySelector("span").textContent = `Face ${i}`;
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
    this.selectFace(index, { focusTab: true });
  }

  selectFace(index, { focusTab = false } = {}) {
    this.index = index;
    const tabs = [...this.tabs.children];
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
    });
    if (focusTab) tabs[index]?.focus();
    this.crops.select(index);
    $("face-panel").setAttribute("aria-labelledby", `face-tab-${index}`);
    const face = this.job.faces[index];
    this.showFacts(face);
    this.fillDownloads($("face-downloads"), faceFiles(index));
    this.tools.showCrop(index);
    this.tools.loadFace(this.artifacts.get(`face_${index}.glb`), face, this.generation, () => this.generation);
  }

  showFacts(face) {
    const facts = $("face-facts");
    facts.replaceChildren();
    if (!face) return;
    const score = document.createElement("abbr");
    score.title = SCORE_HELP;
    score.textContent = `Score ${face.score.toFixed(2)}`;
    const notes = faceNotes(face);
    const pose = ` · yaw ${DEGREES(face.yaw)}, pitch ${DEGREES(face.pitch)}, roll ${DEGREES(face.roll)}`;
    facts.append(score, pose + (notes.length ? ` · ${notes.join("; ")}` : ""));
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
      const saveAs = artifact.download_name || name;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "download";
      button.dataset.artifact = name;
      button.setAttribute("aria-label", `Download ${saveAs}`);
      button.title = saveAs;
      button.textContent = `${label} ${formatBytes(artifact.size)}`.trim();
      button.addEventListener("click", () => this.download(button, artifact.url, saveAs));
      return button;
    }));
  }

  downloadAll(button) {
    const first = this.job.artifacts[0];
    const stem = first?.download_name ? first.download_name.slice(0, -first.name.replace(/^face_/, "face").length)
      : `${this.job.id}_`;
    return this.download(button, archiveUrl(this.job.id), `${stem}3d.zip`);
  }

  async download(button, url, saveAs) {
    button.disabled = true;
    try {
      const link = document.createElement("a");
      link.href = this.keepBlob(await fetchBlob(url));
      link.download = saveAs;
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      this.notify(`${saveAs}: ${friendlyError(error.code, error.message)}`);
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
  const notes = (job.warnings || []).map((code) => code.replaceAll("_", " "));
  const noted = notes.length ? ` · notes: ${notes.join(", ")}` : "";
  return `${faces} face${faces === 1 ? "" : "s"} (numbered from 0) · ${job.engine} engine${seconds}${noted}`;
}
